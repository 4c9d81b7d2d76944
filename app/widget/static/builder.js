/* Widget builder (admin): live preview through the real frame's override parameters, AA contrast hint, copy buttons. */
(function () {
  "use strict";
  var form = document.getElementById("upz-builder"), frame = document.getElementById("upz-preview");
  function lum(hex) {
    var c = [1, 3, 5].map(function (i) { var v = parseInt(hex.substr(i, 2), 16) / 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); });
    return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
  }
  function ratio(hex) { return 1.05 / (lum(hex) + 0.05); }
  function contrastHint() {
    var out = [];
    ["primary_color", "accent_color"].forEach(function (id) {
      var v = document.getElementById(id).value, r = ratio(v);
      if (r < 4.5) out.push(id.replace("_", " ") + " " + v + ": " + r.toFixed(2) + ":1 with white, below WCAG AA 4.5:1 — it will be refused");
    });
    document.getElementById("upz-contrast").textContent = out.join(". ");
  }
  var timer = null;
  function refresh() {
    contrastHint();
    if (!frame) return;
    clearTimeout(timer);
    timer = setTimeout(function () {
      var q = [], hide = [];
      Array.prototype.forEach.call(form.querySelectorAll("[data-preview]"), function (el) {
        var k = el.getAttribute("data-preview");
        if (k === "hide") { if (el.checked) hide.push(el.value); return; }
        var v = el.value;
        if (k === "lang" && v === "auto") return;
        if (v) q.push(k + "=" + encodeURIComponent(v));
      });
      if (hide.length) q.push("hide=" + encodeURIComponent(hide.join(",")));
      frame.src = frame.getAttribute("data-base") + "&" + q.join("&");
    }, 300);
  }
  if (form) { form.addEventListener("input", refresh); form.addEventListener("change", refresh); contrastHint(); }
  Array.prototype.forEach.call(document.querySelectorAll(".upz-copy"), function (btn) {
    btn.addEventListener("click", function () {
      var area = document.getElementById(btn.getAttribute("data-target")), note = document.getElementById("upz-copied");
      function ok() { note.textContent = "Copied."; }
      if (navigator.clipboard && window.isSecureContext) navigator.clipboard.writeText(area.value).then(ok, function () { area.select(); document.execCommand("copy"); ok(); });
      else { area.select(); document.execCommand("copy"); ok(); }
    });
  });
})();
