/* Upzento booking flow (runs inside the widget iframe on our origin).
   Every text from the business or a visitor goes through textContent, never innerHTML. */
(function () {
  "use strict";
  if (window.performance && performance.mark) performance.mark("upz-js-start");
  var D, T, W, S, LOC, root = document.getElementById("upz-app");
  var RANGE = 7;

  function boot() {
    D = JSON.parse(document.getElementById("upz-data").textContent);
    T = D.t; W = D.widget;
    S = { location: null, service: null, staff: null, slot: null, seats: 1, answers: {}, from: null, days: [] };
    // The visitor's own regional format when it is of the widget's language (en-GB: 24 h clock).
    LOC = (navigator.language || "").slice(0, 2) === D.lang ? navigator.language : D.lang;
    S.tz = detectTz();
    if (window.ResizeObserver) new ResizeObserver(reportHeight).observe(document.body);
    window.addEventListener("message", function (e) {
      if (e.origin !== D.parent_origin || e.source !== window.parent || !e.data || !e.data.upzento) return;
      if (e.data.type === "open") focusHeading();
    });
    var closeBtn = document.getElementById("upz-close");
    if (D.closable) {
      closeBtn.hidden = false;
      closeBtn.addEventListener("click", function () { post("closed"); });
      document.addEventListener("keydown", function (e) { if (e.key === "Escape") post("closed"); });
    }
    D.notes.forEach(function (n) { if (window.console) console.warn("Upzento widget: " + n); });
    root.addEventListener("keydown", slotKeys);
    start();
    post("ready");
  }
  function detectTz() {
    try { return Intl.DateTimeFormat().resolvedOptions().timeZone || D.tz; } catch (e) { return D.tz; }
  }

  function h(tag, attrs, kids) {
    var el = document.createElement(tag);
    for (var k in attrs || {}) {
      var v = attrs[k];
      if (v === null || v === undefined || v === false) continue;
      if (k === "text") el.textContent = v;
      else if (k.slice(0, 2) === "on") el.addEventListener(k.slice(2), v);
      else if (k === "className") el.className = v;
      else el.setAttribute(k, v === true ? "" : v);
    }
    (kids || []).forEach(function (c) { if (c) el.appendChild(typeof c === "string" ? document.createTextNode(c) : c); });
    return el;
  }
  function fmt(s, n) { return s.replace("{n}", n); }
  function byKey(list, key) { for (var i = 0; i < list.length; i++) if (list[i].key === key) return list[i]; return null; }

  function post(type, extra) {
    if (!D.parent_origin || window.parent === window) return;
    var msg = { upzento: 1, type: type, widget: W.id };
    for (var k in extra || {}) msg[k] = extra[k];
    window.parent.postMessage(msg, D.parent_origin);
  }
  var lastH = 0;
  function reportHeight() {
    // The content's own height: the document's scrollHeight never drops below the frame's current
    // height, so the frame could grow but never shrink back after a long step.
    var b = document.body, last = b.lastElementChild;
    var below = last ? parseFloat(getComputedStyle(last).marginBottom) || 0 : 0;
    var hgt = Math.ceil(b.getBoundingClientRect().bottom + window.scrollY + below);
    if (hgt !== lastH) { lastH = hgt; post("resize", { height: hgt }); }
  }

  function focusHeading() { var h1 = root.querySelector("h1"); if (h1) h1.focus(); }
  function screen(title, kids, back) {
    root.textContent = "";
    if (back) root.appendChild(h("button", { type: "button", className: "upz-link", onclick: back, text: "← " + T.back }));
    root.appendChild(h("h1", { tabindex: "-1", text: title }));
    kids.forEach(function (k) { if (k) root.appendChild(k); });
    progress();
    focusHeading();
    reportHeight();
  }
  var STEPS = ["location", "service", "staff", "time", "details", "done"];
  var current = "location";
  function progress() {
    var ol = document.getElementById("upz-progress");
    ol.textContent = "";
    ol.setAttribute("aria-hidden", "true");  // decorative: each step's heading says where the visitor is
    var at = STEPS.indexOf(current);
    STEPS.forEach(function (s, i) { ol.appendChild(h("li", { className: i <= at ? "upz-on" : "", "aria-current": i === at ? "step" : null })); });
  }

  // ------------------------------------------------------------------ steps
  function locationsFor() {
    var svc = S.service;
    return D.locations.filter(function (l) { return !svc || svc.locations.indexOf(l.key) >= 0; });
  }
  function start() {
    if (D.pre.service) S.service = byKey(D.services, D.pre.service);
    if (D.pre.staff) S.staff = D.pre.staff;
    if (D.pre.location) S.location = byKey(D.locations, D.pre.location);
    var locs = locationsFor();
    if (!S.location && locs.length === 1) S.location = locs[0];
    if (!S.location && W.show_location_step && locs.length > 1) return stepLocation();
    return afterLocation();
  }
  function stepLocation() {
    current = "location";
    var list = h("div", { className: "upz-list", role: "list" });
    locationsFor().forEach(function (l) {
      var links = h("span", { className: "upz-links" });
      if (l.map_url) links.appendChild(h("a", { href: l.map_url, target: "_blank", rel: "noopener", text: T.map }));
      if (l.directions_url) links.appendChild(h("a", { href: l.directions_url, target: "_blank", rel: "noopener", text: T.directions }));
      list.appendChild(h("div", { role: "listitem" }, [
        h("button", { type: "button", className: "upz-card", "data-key": l.key, onclick: function () { S.location = l; afterLocation(); } }, [
          h("strong", { text: l.name }), h("span", { className: "upz-meta", text: l.address || "" })]),
        links]));
    });
    screen(T.location, [list]);
  }
  function afterLocation() {
    if (S.service) return afterService();
    return stepService();
  }
  function price(s) {
    if (!s.price) return "";
    try { return new Intl.NumberFormat(LOC, { style: "currency", currency: D.currency }).format(+s.price); } catch (e) { return s.price + " " + D.currency; }
  }
  function stepService() {
    current = "service";
    var groups = {}, order = [];
    D.services.forEach(function (s) {
      if (S.location && s.locations.indexOf(S.location.key) < 0) return;
      var c = s.category || T.all;
      if (!groups[c]) { groups[c] = []; order.push(c); }
      groups[c].push(s);
    });
    var kids = [];
    order.forEach(function (c) {
      if (order.length > 1) kids.push(h("h2", { text: c }));
      var list = h("div", { className: "upz-list" });
      groups[c].forEach(function (s) {
        list.appendChild(h("button", { type: "button", className: "upz-card", "data-key": s.key, onclick: function () { S.service = s; afterService(); } }, [
          h("strong", { text: s.name }),
          h("span", { className: "upz-meta", text: s.duration_min + " " + T.min + (s.price ? " · " + price(s) : "") }),
          s.description ? h("span", { className: "upz-meta", text: " — " + s.description }) : null]));
      });
      kids.push(list);
    });
    screen(T.service, kids, D.locations.length > 1 && W.show_location_step && !D.pre.location ? stepLocation : null);
  }
  function staffFor() {
    return D.staff.filter(function (p) { return S.service.staff.indexOf(p.key) >= 0; });
  }
  function afterService() {
    if (!S.location) {
      var locs = locationsFor();
      if (locs.length === 1) S.location = locs[0];
    }
    if (!S.staff && W.show_staff_step && staffFor().length > 1) return stepStaff();
    return stepTime();
  }
  function stepStaff() {
    current = "staff";
    var list = h("div", { className: "upz-list" });
    list.appendChild(h("button", { type: "button", className: "upz-card", "data-key": "", onclick: function () { S.staff = null; S.anyChosen = true; stepTime(); } }, [h("strong", { text: T.any })]));
    staffFor().forEach(function (p) {
      list.appendChild(h("button", { type: "button", className: "upz-card", "data-key": p.key, onclick: function () { S.staff = p.key; stepTime(); } }, [h("strong", { text: p.name })]));
    });
    screen(T.staff, [list], D.pre.service ? null : stepService);
  }

  var ymdFmts = {};
  function ymd(date, tz) {
    // Building an Intl formatter costs far more than using one: keep one per zone.
    var f = ymdFmts[tz] || (ymdFmts[tz] = new Intl.DateTimeFormat("en-CA", { timeZone: tz, year: "numeric", month: "2-digit", day: "2-digit" }));
    return f.format(date);
  }
  function addDays(day, n) { var d = new Date(day + "T12:00:00Z"); d.setUTCDate(d.getUTCDate() + n); return d.toISOString().slice(0, 10); }
  function tzSelect(drawnSel) {
    var zones = [S.tz, D.tz];
    if (S.location) zones.push(S.location.timezone);
    zones.push("UTC");
    var seen = {}, sel = drawnSel || h("select", { id: "upz-tz" });
    // Only the times are redrawn: the select stays where it is, with the focus on it.
    sel.addEventListener("change", function () {
      S.tz = sel.value; S.from = ymd(new Date(D.now), S.tz); S.tries = 0; D.inline = null;
      var box = document.getElementById("upz-times");
      if (!box) return stepTime();
      box.hidden = false; box.removeAttribute("data-tzo");
      box.textContent = ""; box.appendChild(h("p", { className: "upz-muted", text: T.loading }));
      loadSlots(box);
    });
    function add(z) { if (z && !seen[z]) { seen[z] = 1; sel.appendChild(h("option", { value: z, text: z.replace(/_/g, " "), selected: z === S.tz })); } }
    // A drawn list is the server's guess of this one (the location's zone first); redo it if the visitor's zone differs.
    if (drawnSel && sel.value !== S.tz) sel.textContent = "";
    if (drawnSel) Array.prototype.forEach.call(sel.options, function (o) { seen[o.value] = 1; });
    zones.forEach(add);
    // The full list (400+ zones) only when the visitor reaches for it: keeps the first paint fast.
    var full = function () {
      sel.removeEventListener("focus", full); sel.removeEventListener("mousedown", full);
      try { Intl.supportedValuesOf("timeZone").forEach(add); } catch (e) { /* old browser: the short list stays */ }
    };
    sel.addEventListener("focus", full); sel.addEventListener("mousedown", full);
    if (drawnSel) return sel.parentNode;
    return h("div", { className: "upz-row" }, [h("label", { "for": "upz-tz", className: "upz-label", text: T.timezone }), sel]);
  }
  function backFromTime() {
    if (!D.pre.staff && W.show_staff_step && staffFor().length > 1) return stepStaff();
    if (!D.pre.service) return stepService();
    return null;
  }
  function stepTime() {
    current = "time";
    if (!S.from) { S.from = ymd(new Date(D.now), S.tz); S.tries = 0; }
    var I = D.inline, drawn = document.getElementById("upz-times");
    var fits = I && I.service === S.service.key && I.staff === S.staff && S.location && I.location === S.location.key && S.from === I.from;
    // Drawn by the server and kept by the page's own check (the visitor's clock shows the same times there).
    if (fits && drawn && drawn.hasAttribute("data-tzo") && !drawn.hidden && backFromTime() === null) {
      D.inline = null;
      tzSelect(document.getElementById("upz-tz"));
      progress();
      if (!root.contains(document.activeElement)) focusHeading();  // not when the visitor is already on a slot
      return renderSlots(drawn, I.slots, true);
    }
    var box = h("div", { id: "upz-times" }, [h("p", { className: "upz-muted", text: T.loading })]);
    var back = backFromTime() === null ? null : backFromTime;
    screen(T.time, [tzSelect(), box], back ? function () { S.from = null; backFromTime(); } : null);
    if (fits && I.tz === S.tz) {
      D.inline = null;  // used once; later visits of this step ask the API
      return renderSlots(box, I.slots);
    }
    loadSlots(box);
  }
  function loadSlots(box) {
    var q = "service=" + encodeURIComponent(S.service.key) + "&from=" + S.from + "&to=" + addDays(S.from, RANGE - 1) + "&timezone=" + encodeURIComponent(S.tz);
    if (S.location) q += "&location=" + encodeURIComponent(S.location.key);
    if (S.staff) q += "&staff=" + encodeURIComponent(S.staff);
    fetch(D.api + "/availability?" + q).then(function (r) { return r.json().then(function (b) { return { ok: r.ok, body: b }; }); })
      .then(function (res) {
        if (!res.ok) throw new Error(res.body.error ? res.body.error.message : "error");
        renderSlots(box, res.body.slots);
      }).catch(function (e) { box.textContent = ""; box.appendChild(h("p", { className: "upz-alert", role: "alert", text: T.error + " " + e.message })); reportHeight(); });
  }
  // One tab stop per day: Left/Right (Home/End) move within a day, Up/Down to the same place on the
  // previous/next day, so a keyboard user never tabs through every time.
  function rove(box) {
    Array.prototype.forEach.call(box.querySelectorAll(".upz-slots"), function (g) {
      Array.prototype.forEach.call(g.querySelectorAll("button.upz-slot"), function (b, i) { b.tabIndex = i === 0 ? 0 : -1; });
    });
  }
  function slotKeys(e) {
    var b = e.target;
    if (!b.classList || !b.classList.contains("upz-slot")) return;
    var group = b.parentNode, days = Array.prototype.slice.call(root.querySelectorAll(".upz-slots"));
    var mine = Array.prototype.slice.call(group.querySelectorAll("button.upz-slot")), i = mine.indexOf(b), d = days.indexOf(group), to = null;
    if (e.key === "ArrowRight") to = mine[i + 1];
    else if (e.key === "ArrowLeft") to = mine[i - 1];
    else if (e.key === "Home") to = mine[0];
    else if (e.key === "End") to = mine[mine.length - 1];
    else if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      var other = days[d + (e.key === "ArrowDown" ? 1 : -1)];
      if (other) { var list = other.querySelectorAll("button.upz-slot"); to = list[Math.min(i, list.length - 1)]; }
    } else return;
    e.preventDefault();
    if (!to) return;
    b.tabIndex = -1; to.tabIndex = 0; to.focus();
  }
  function setText(el, text) {
    var t = el.firstChild;
    if (t && t.nodeType === 3) { if (t.data !== text) t.data = text; } else el.insertBefore(document.createTextNode(text), t);
  }
  // adopt: `box` holds the first days as the server drew them (same markup as below).
  function renderSlots(box, slots, adopt) {
    var byStart = {};
    slots.forEach(function (s) { byStart[s.start] = s; });
    if (adopt) {
      S.marked = 1;  // the page marked them when they were painted
      adopt = Array.prototype.every.call(box.querySelectorAll("button.upz-slot"), function (b) { return byStart[b.getAttribute("data-start")]; });
    }
    if (!adopt) box.textContent = "";
    var first = slots.length && !S.marked;
    var dayFmt = new Intl.DateTimeFormat(LOC, { timeZone: S.tz, weekday: "long", day: "numeric", month: "long" });
    var timeFmt = new Intl.DateTimeFormat(LOC, { timeZone: S.tz, hour: "2-digit", minute: "2-digit" });
    var byDay = {}, order = [];
    slots.forEach(function (s) {
      var d = new Date(s.start), k = ymd(d, S.tz);
      if (!byDay[k]) { byDay[k] = []; order.push(k); }
      byDay[k].push(s);
    });
    if (!order.length) {
      if (S.tries < 4) { S.tries++; S.from = addDays(S.from, RANGE); box.appendChild(h("p", { className: "upz-muted", text: T.loading })); return loadSlots(box); }
      box.appendChild(h("p", { text: T.no_slots }));
    }
    function seatsLeft(s) {
      var left = null;
      if (s.seats_left) { left = 0; for (var p in s.seats_left) left = Math.max(left, s.seats_left[p]); }
      return left;
    }
    function pick(s) { var left = seatsLeft(s); return function () { S.slot = s; S.left = left; stepDetails(); }; }
    function day(k) {
      var id = "upz-day-" + k, row = h("div", { className: "upz-slots", role: "group", "aria-labelledby": id });
      byDay[k].forEach(function (s) {
        var left = seatsLeft(s);
        // The day is announced by the group's label (its heading); the button says the time and seats.
        row.appendChild(h("button", { type: "button", className: "upz-slot", "data-start": s.start, onclick: pick(s) },
          [timeFmt.format(new Date(s.start)), left !== null ? h("small", { text: fmt(T.seats_left, left) }) : null]));
      });
      return h("div", { className: "upz-day" }, [h("h2", { id: id, text: dayFmt.format(new Date(byDay[k][0].start)) }), row]);
    }
    var onLater = function () { S.from = addDays(S.from, RANGE); S.tries = 0; box.textContent = T.loading; loadSlots(box); };
    var later, shown = {};
    if (adopt) {
      // Wire the drawn buttons and give them this browser's wording (the server's CLDR may word a time differently).
      Array.prototype.forEach.call(box.querySelectorAll(".upz-day"), function (el) {
        var head = el.querySelector("h2"), k = head.id.slice("upz-day-".length);
        shown[k] = 1;
        if (byDay[k]) setText(head, dayFmt.format(new Date(byDay[k][0].start)));
        Array.prototype.forEach.call(el.querySelectorAll("button.upz-slot"), function (b) {
          var s = byStart[b.getAttribute("data-start")];
          b.addEventListener("click", pick(s));
          setText(b, timeFmt.format(new Date(s.start)));
        });
      });
      later = document.getElementById("upz-later");
      later.addEventListener("click", onLater);
    } else {
      later = h("button", { type: "button", className: "upz-link", id: "upz-later", text: T.later + " →", onclick: onLater });
      // The first two days right away, the rest in the next task: the first times show sooner.
      order.slice(0, 2).forEach(function (k) { box.appendChild(day(k)); shown[k] = 1; });
      box.appendChild(later);
    }
    var rest = order.filter(function (k) { return !shown[k]; });
    if (rest.length) setTimeout(function () {
      if (later.parentNode !== box) return;  // the visitor moved on meanwhile
      var frag = document.createDocumentFragment();
      rest.forEach(function (k) { frag.appendChild(day(k)); });
      box.insertBefore(frag, later);
      rove(box);
      reportHeight();
    }, 0);
    rove(box);
    if (!document.getElementById("upz-keys") && order.length) {
      var hint = h("p", { className: "upz-sr", id: "upz-keys", text: T.slot_keys });
      box.parentNode.insertBefore(hint, box);
    }
    Array.prototype.forEach.call(box.querySelectorAll(".upz-slots"), function (g) { g.setAttribute("aria-describedby", "upz-keys"); });
    reportHeight();
    // For the benchmark: the frame after the first slots were laid out is when they become visible.
    if (first && window.performance && performance.mark) {
      S.marked = 1;
      requestAnimationFrame(function () { performance.mark("upz-first-slots"); });
    }
  }

  // ------------------------------------------------------------------ form
  function field(id, labelText, input, help, required) {
    var kids = [h("label", { "for": id }, [labelText, required ? " *" : " (" + T.optional + ")"])];
    if (help) { kids.push(h("p", { className: "upz-help", id: id + "-help", text: help })); input.setAttribute("aria-describedby", id + "-help"); }
    kids.push(input, h("p", { className: "upz-err", id: id + "-err", hidden: true }));
    if (required) input.setAttribute("aria-required", "true");
    return h("div", { className: "upz-field", "data-field": id }, kids);
  }
  function customInput(f, id) {
    var t = f.type;
    if (t === "textarea") return h("textarea", { id: id, name: f.key, rows: 3 });
    if (t === "select" || t === "multiselect") {
      var sel = h("select", { id: id, name: f.key, multiple: t === "multiselect" });
      if (t === "select") sel.appendChild(h("option", { value: "", text: "—" }));
      f.options.forEach(function (o) { sel.appendChild(h("option", { value: o, text: o })); });
      return sel;
    }
    var type = { email: "email", phone: "tel", number: "number", date: "date" }[t] || "text";
    return h("input", { id: id, name: f.key, type: type, inputmode: t === "phone" ? "tel" : null });
  }
  function stepDetails() {
    current = "details";
    var when = new Intl.DateTimeFormat(LOC, { timeZone: S.tz, dateStyle: "full", timeStyle: "short" }).format(new Date(S.slot.start));
    var form = h("form", { id: "upz-form", novalidate: true });
    form.appendChild(h("p", { className: "upz-ok" }, [h("strong", { text: S.service.name }), " · " + when + " (" + S.tz.replace(/_/g, " ") + ")"]));
    form.appendChild(field("upz-name", T.name, h("input", { id: "upz-name", type: "text", autocomplete: "name" }), null, true));
    form.appendChild(field("upz-email", T.email, h("input", { id: "upz-email", type: "email", autocomplete: "email" }), null, true));
    if (!D.hide_phone) form.appendChild(field("upz-phone", T.phone, h("input", { id: "upz-phone", type: "tel", autocomplete: "tel" }), null, false));
    if (S.left !== null && S.service.capacity > 1) {
      var seats = h("select", { id: "upz-seats" });
      for (var i = 1; i <= Math.min(S.left, S.service.capacity); i++) seats.appendChild(h("option", { value: i, text: i }));
      form.appendChild(field("upz-seats", T.seats, seats, null, true));
    }
    (D.fields[S.service.key] || []).forEach(function (f) {
      var id = "upz-f-" + f.key;
      if (f.type === "checkbox") {
        var cb = h("input", { type: "checkbox", id: id, name: f.key });
        var wrap = h("div", { className: "upz-field", "data-field": id }, [
          h("label", { className: "upz-check", "for": id }, [cb, h("span", { text: f.label + (f.required ? " *" : "") })]),
          f.help ? h("p", { className: "upz-help", text: f.help }) : null, h("p", { className: "upz-err", id: id + "-err", hidden: true })]);
        if (f.required) cb.setAttribute("aria-required", "true");
        form.appendChild(wrap);
      } else form.appendChild(field(id, f.label, customInput(f, id), f.help, f.required));
    });
    if (S.service.allow_recurring) {
      var rep = h("input", { type: "checkbox", id: "upz-repeat" });
      var count = h("select", { id: "upz-count" });
      for (var n = 2; n <= 12; n++) count.appendChild(h("option", { value: n, text: n }));
      form.appendChild(h("div", { className: "upz-field" }, [h("label", { className: "upz-check", "for": "upz-repeat" }, [rep, T.repeat]),
        h("label", { "for": "upz-count", text: T.times }), count]));
    }
    D.consents.forEach(function (c) {
      var id = "upz-consent-" + c.kind, cb = h("input", { type: "checkbox", id: id, "aria-required": "true" });
      form.appendChild(h("div", { className: "upz-field", "data-field": id }, [
        h("label", { className: "upz-check", "for": id }, [cb, h("span", { text: T.accept + " " + T[c.kind] + " *" })]),
        h("details", {}, [h("summary", { text: T[c.kind] }), c.body]),
        h("p", { className: "upz-err", id: id + "-err", hidden: true })]));
    });
    var alert = h("div", { id: "upz-alert", className: "upz-alert", role: "alert", hidden: true });
    var submit = h("button", { type: "submit", className: "upz-btn", id: "upz-submit", text: T.confirm });
    form.appendChild(alert);
    form.appendChild(submit);
    var clear = function (e) { if (e.target.id && e.target.getAttribute("aria-invalid")) setError(e.target.id, ""); };
    form.addEventListener("input", clear);
    form.addEventListener("change", clear);
    form.addEventListener("submit", function (e) { e.preventDefault(); submitForm(form, alert, submit); });
    screen(T.details, [form], function () { stepTime(); });
  }
  function setError(id, message) {
    var input = document.getElementById(id), err = document.getElementById(id + "-err");
    if (!input || !err) return false;
    err.textContent = message; err.hidden = !message;
    var described = (input.getAttribute("aria-describedby") || "").split(" ").filter(function (x) { return x && x !== id + "-err"; });
    if (message) { input.setAttribute("aria-invalid", "true"); described.push(id + "-err"); }
    else input.removeAttribute("aria-invalid");
    if (described.length) input.setAttribute("aria-describedby", described.join(" ")); else input.removeAttribute("aria-describedby");
    return true;
  }
  // The alert region announces how many fields need a fix and links to each (the fields say why).
  function summarize(alert, errors) {
    alert.textContent = "";
    alert.appendChild(h("p", { text: fmt(T.fix_errors, errors.length) }));
    var ul = h("ul");
    errors.forEach(function (e) {
      var label = document.querySelector('label[for="' + e[0] + '"]');
      var name = label ? label.textContent.replace(/\s*(\*|\(.*\))\s*$/, "") : e[0];
      ul.appendChild(h("li", {}, [h("a", { href: "#" + e[0], onclick: function (ev) { ev.preventDefault(); document.getElementById(e[0]).focus(); }, text: name })]));
    });
    alert.appendChild(ul);
    alert.hidden = false;
  }
  function value(id) { var el = document.getElementById(id); return el ? el.value.trim() : ""; }
  function collect() {
    var errors = [], answers = {};
    var name = value("upz-name"), email = value("upz-email");
    if (!name) errors.push(["upz-name", T.required]);
    if (!email) errors.push(["upz-email", T.required]);
    else if (!/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(email)) errors.push(["upz-email", T.invalid_email]);
    (D.fields[S.service.key] || []).forEach(function (f) {
      var el = document.getElementById("upz-f-" + f.key), v;
      if (f.type === "checkbox") v = el.checked;
      else if (f.type === "multiselect") v = Array.prototype.filter.call(el.options, function (o) { return o.selected; }).map(function (o) { return o.value; });
      else v = el.value.trim();
      var empty = v === false || v === "" || (v instanceof Array && !v.length);
      if (f.required && empty) errors.push(["upz-f-" + f.key, T.required]);
      if (!empty) answers[f.key] = v;
    });
    var consents = {};
    D.consents.forEach(function (c) {
      if (document.getElementById("upz-consent-" + c.kind).checked) consents[c.kind] = c.version;
      else errors.push(["upz-consent-" + c.kind, T.required]);
    });
    var body = { service: S.service.key, start: S.slot.start, timezone: S.tz, widget: W.id,
      customer: { name: name, email: email, locale: D.lang }, answers: answers, consents: consents };
    if (value("upz-phone")) body.customer.phone = value("upz-phone");
    if (S.location) body.location = S.location.key;
    if (S.staff) body.staff = S.staff;
    if (document.getElementById("upz-seats")) body.seats = +value("upz-seats");
    var rep = document.getElementById("upz-repeat");
    if (rep && rep.checked) body.recurrence = { rrule: "FREQ=WEEKLY;COUNT=" + value("upz-count"), mode: "all_or_nothing" };
    return { errors: errors, body: body };
  }
  function serverFieldId(field) {
    if (!field) return null;
    if (field.indexOf("answers.") === 0) return "upz-f-" + field.slice(8);
    if (field.indexOf("consents.") === 0) return "upz-consent-" + field.slice(9);
    return { "customer.name": "upz-name", "customer.email": "upz-email", "customer.phone": "upz-phone", seats: "upz-seats" }[field] || null;
  }
  function submitForm(form, alert, submit) {
    Array.prototype.forEach.call(form.querySelectorAll("[aria-invalid]"), function (el) { setError(el.id, ""); });
    alert.hidden = true;
    var c = collect();
    if (c.errors.length) {
      c.errors.forEach(function (e) { setError(e[0], e[1]); });
      summarize(alert, c.errors);
      document.getElementById(c.errors[0][0]).focus();
      reportHeight();
      return;
    }
    submit.disabled = true;
    S.key = S.key || ("w-" + Date.now() + "-" + Math.random().toString(36).slice(2));
    fetch(D.api + "/bookings", { method: "POST", headers: { "Content-Type": "application/json", "Idempotency-Key": S.key, "X-Upzento-Widget": W.id },
      body: JSON.stringify(c.body) })
      .then(function (r) { return r.json().then(function (b) { return { status: r.status, body: b }; }); })
      .then(function (res) {
        submit.disabled = false;
        if (res.status === 201) return done(res.body);
        S.key = null;
        var err = res.body.error || {};
        if (err.code === "slot_unavailable") { alert.textContent = T.taken; alert.hidden = false; return; }
        var list = err.errors || [{ field: err.field, message: err.message }], shown = false;
        list.forEach(function (x) { var id = serverFieldId(x.field); if (id && setError(id, x.message)) shown = true; });
        if (!shown) { alert.textContent = err.message || T.error; alert.hidden = false; }
        reportHeight();
      }).catch(function () { submit.disabled = false; alert.textContent = T.error; alert.hidden = false; });
  }
  function gcal(a) {
    var f = function (s) { return s.replace(/[-:]/g, ""); };
    return "https://calendar.google.com/calendar/render?action=TEMPLATE&text=" + encodeURIComponent(a.service_name + " – " + D.business) +
      "&dates=" + f(a.start) + "/" + f(a.end) + (a.location_name ? "&location=" + encodeURIComponent(a.location_name) : "");
  }
  function outlook(a) {
    var e = encodeURIComponent;
    return "https://outlook.live.com/calendar/0/deeplink/compose?path=/calendar/action/compose&rru=addevent&subject=" +
      e(a.service_name + " – " + D.business) + "&startdt=" + e(a.start) + "&enddt=" + e(a.end) +
      (a.location_name ? "&location=" + e(a.location_name) : "");
  }
  function done(body) {
    current = "done";
    var a = body.appointment;
    var when = new Intl.DateTimeFormat(LOC, { timeZone: S.tz, dateStyle: "full", timeStyle: "short" }).format(new Date(a.start));
    var kids = [h("div", { className: "upz-ok", id: "upz-done", "data-appointment": a.id }, [
      h("p", {}, [h("strong", { text: a.service_name })]),
      h("p", { text: T.when + ": " + when + " (" + S.tz.replace(/_/g, " ") + ")" }),
      h("p", { text: T.with + ": " + a.staff_name + (a.location_name ? " · " + a.location_name : "") }),
      body.appointments ? h("p", { text: fmt(T.recurring_note, body.appointments.length) }) : null])];
    kids.push(h("p", { className: "upz-links" }, [
      h("a", { href: D.api + "/bookings/" + body.manage_token + "/ics", download: "appointment.ics", text: T.ics }),
      h("a", { href: gcal(a), target: "_blank", rel: "noopener", text: T.google }),
      h("a", { href: outlook(a), target: "_blank", rel: "noopener", id: "upz-outlook", text: T.outlook }),
      h("a", { href: D.portal + body.manage_token, target: "_blank", rel: "noopener", id: "upz-manage", text: T.manage })]));
    screen(T.done, kids);
    post("booking_completed", { appointment_id: a.id, start: a.start, service: a.service });
  }

  var drawn = document.getElementById("upz-times");
  if (drawn && !drawn.hidden) {
    // The server drew the first times and they are on screen without this script: start once
    // they are painted (the first use of Intl alone costs ~15 ms); a visitor who acts sooner
    // (pointer, key, focus) starts it at once, before their event reaches the page.
    var started = false, EARLY = ["pointerdown", "mousedown", "keydown", "focusin", "click"];
    var go = function () {
      if (started) return;
      started = true;
      EARLY.forEach(function (t) { document.removeEventListener(t, go, true); });
      boot();
    };
    EARLY.forEach(function (t) { document.addEventListener(t, go, true); });
    requestAnimationFrame(function () { setTimeout(go, 0); });
  } else boot();
})();
