/* Upzento booking widget loader: mounts the booking iframe (inline, popup or floating button).
   One global (window.Upzento); every CSS class starts with "upzw-". Messages are accepted only
   from our own origin and from the iframe we created; we post only to that origin. */
(function (w, d) {
  "use strict";
  if (w.Upzento && w.Upzento.version) return;
  var me = d.currentScript, base = new URL(me ? me.src : "/", location.href).origin;
  var insts = [], handlers = {}, styled = false;

  function css() {
    if (styled) return;
    styled = true;
    var s = d.createElement("style");
    s.textContent =
      ".upzw-frame{width:100%;border:0;display:block;min-height:360px;background:#fff}" +
      ".upzw-btn{font:600 16px/1 system-ui,sans-serif;color:#fff;border:0;border-radius:24px;padding:14px 22px;cursor:pointer;box-shadow:0 2px 8px rgba(0,0,0,.25)}" +
      ".upzw-btn:focus-visible{outline:3px solid #111;outline-offset:2px}" +
      ".upzw-float{position:fixed;right:20px;bottom:20px;z-index:2147483000}" +
      ".upzw-overlay{position:fixed;inset:0;background:rgba(17,24,39,.6);z-index:2147483001;display:flex;align-items:center;justify-content:center}" +
      ".upzw-overlay[hidden]{display:none}" +
      ".upzw-modal{background:#fff;width:min(720px,100vw);max-height:100vh;height:min(760px,100vh);overflow:auto;border-radius:12px}" +
      "@media (max-width:600px){.upzw-modal{border-radius:0;height:100vh}}" +
      ".upzw-modal .upzw-frame{height:100%}";
    d.head.appendChild(s);
  }
  function aa(hex) {
    // White button text needs WCAG AA (4.5:1); a colour that fails keeps the default.
    if (!/^#[0-9a-f]{6}$/i.test(hex || "")) return false;
    var l = [1, 3, 5].map(function (i) { var v = parseInt(hex.substr(i, 2), 16) / 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); });
    return 1.05 / (0.2126 * l[0] + 0.7152 * l[1] + 0.0722 * l[2] + 0.05) >= 4.5;
  }
  function opt(el, o, name) {
    var v = o[name];
    if (v === undefined && el) v = el.getAttribute("data-" + name.replace(/[A-Z]/g, function (c) { return "-" + c.toLowerCase(); }));
    return v === null ? undefined : v;
  }
  function src(o) {
    var q = ["origin=" + encodeURIComponent(location.origin)];
    ["service", "location", "staff", "lang", "hide"].forEach(function (k) { if (o[k]) q.push(k + "=" + encodeURIComponent(o[k])); });
    if (o.primaryColor) q.push("primary=" + encodeURIComponent(o.primaryColor));
    if (o.mode !== "inline") q.push("closable=1");
    return base + "/widget/v1/" + encodeURIComponent(o.tenant) + "/" + encodeURIComponent(o.widget) + "/frame?" + q.join("&");
  }
  function frame(inst) {
    var f = d.createElement("iframe");
    f.className = "upzw-frame";
    f.title = inst.o.title || "Booking";
    f.src = src(inst.o);
    f.setAttribute("allow", "clipboard-write");
    inst.frame = f;
    return f;
  }
  function emit(inst, type, detail) {
    (handlers[type] || []).forEach(function (fn) { try { fn(detail, inst.api); } catch (e) { setTimeout(function () { throw e; }); } });
    inst.el.dispatchEvent(new CustomEvent("upzento:" + type, { detail: detail, bubbles: true }));
  }
  function open(inst) {
    if (!inst.overlay) return;
    inst.opener = d.activeElement;
    if (!inst.frame) inst.box.appendChild(frame(inst));
    inst.overlay.hidden = false;
    inst.frame.focus();
    send(inst, "open");
    emit(inst, "opened", {});
  }
  function close(inst) {
    if (!inst.overlay || inst.overlay.hidden) return;
    inst.overlay.hidden = true;
    if (inst.opener && inst.opener.focus) inst.opener.focus();
    emit(inst, "closed", {});
  }
  function send(inst, type) {
    if (inst.frame && inst.frame.contentWindow) inst.frame.contentWindow.postMessage({ upzento: 1, type: type }, base);
  }
  function mount(o) {
    o = o || {};
    var el = o.element || (o.target ? d.querySelector(o.target) : null);
    var names = ["tenant", "widget", "mode", "service", "location", "staff", "lang", "primaryColor", "hide", "label", "title"], c = {};
    names.forEach(function (n) { c[n] = opt(el, o, n); });
    if (!c.tenant || !c.widget) throw new Error("Upzento: tenant and widget are required");
    c.mode = c.mode || "inline";
    if (!el) { el = d.createElement("div"); d.body.appendChild(el); }
    css();
    var inst = { o: c, el: el };
    inst.api = { open: function () { open(inst); }, close: function () { close(inst); }, element: el };
    if (c.mode === "inline") {
      el.appendChild(frame(inst));
    } else {
      var b = d.createElement("button");
      b.type = "button";
      b.className = "upzw-btn" + (c.mode === "floating" ? " upzw-float" : "");
      b.textContent = c.label || "Book now";
      b.style.background = aa(c.primaryColor) ? c.primaryColor : "#1d4ed8";
      b.setAttribute("aria-haspopup", "dialog");
      b.addEventListener("click", function () { open(inst); });
      var ov = d.createElement("div");
      ov.className = "upzw-overlay";
      ov.hidden = true;
      var box = d.createElement("div");
      box.className = "upzw-modal";
      box.setAttribute("role", "dialog");
      box.setAttribute("aria-modal", "true");
      box.setAttribute("aria-label", c.title || b.textContent);
      ov.appendChild(box);
      ov.addEventListener("click", function (e) { if (e.target === ov) close(inst); });
      ov.addEventListener("keydown", function (e) { if (e.key === "Escape") close(inst); });
      el.appendChild(b);
      d.body.appendChild(ov);
      inst.button = b; inst.overlay = ov; inst.box = box;
    }
    insts.push(inst);
    return inst.api;
  }
  w.addEventListener("message", function (e) {
    if (e.origin !== base || !e.data || !e.data.upzento) return;
    for (var i = 0; i < insts.length; i++) {
      var inst = insts[i];
      if (!inst.frame || e.source !== inst.frame.contentWindow) continue;
      var m = e.data;
      if (m.type === "resize" && inst.o.mode === "inline" && m.height > 0) { inst.frame.style.minHeight = "0"; inst.frame.style.height = Math.min(m.height, 5000) + "px"; }
      else if (m.type === "closed") close(inst);
      else if (m.type === "booking_completed") emit(inst, "booking_completed", { appointmentId: m.appointment_id, start: m.start, service: m.service });
      if (m.type === "resize") emit(inst, "resize", { height: m.height });
      if (m.type === "ready") emit(inst, "ready", {});
    }
  });
  function on(type, fn) { (handlers[type] = handlers[type] || []).push(fn); }
  function auto() {
    var els = d.querySelectorAll("[data-upzento-tenant]");
    for (var i = 0; i < els.length; i++) {
      var el = els[i];
      if (el.getAttribute("data-upzento-mounted")) continue;
      el.setAttribute("data-upzento-mounted", "1");
      mount({ element: el, tenant: el.getAttribute("data-upzento-tenant"), widget: el.getAttribute("data-upzento-widget") });
    }
  }
  w.Upzento = { version: 1, mount: mount, on: on, instances: insts };
  // Containers parsed before this script get their iframe now (its request starts at once,
  // not after the rest of the page has parsed); later ones at DOMContentLoaded.
  auto();
  if (d.readyState === "loading") d.addEventListener("DOMContentLoaded", auto);
})(window, document);
