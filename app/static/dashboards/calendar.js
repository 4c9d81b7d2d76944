/* Admin calendar: FullCalendar (standard build) fed by /calendar/events.
 *
 * Times travel as wall-clock strings of the chosen zone (no offset); FullCalendar runs in
 * "UTC" only as a neutral clock, so the browser's own zone never shifts anything and the
 * server does every DST conversion. Resource columns (per staff member or location) are one
 * timeGridDay calendar per resource side by side: FullCalendar's resource views are premium.
 */
(function () {
  "use strict";
  var root = document.getElementById("upz-calendar");
  if (!root || !window.FullCalendar) return;
  var eventsUrl = root.dataset.events, base = root.dataset.base, bookUrl = root.dataset.book;
  var tz = root.dataset.timezone, mayAct = root.dataset.mayAct === "1", csrf = root.dataset.csrf;
  var filters = JSON.parse(root.dataset.filters || "{}");
  var resources = JSON.parse(root.dataset.resources || "[]");
  var narrow = window.matchMedia("(max-width: 640px)").matches;
  var statusBox = document.getElementById("upz-cal-status");
  var dialog = document.getElementById("upz-cal-dialog");
  var calendars = [];

  function say(text, bad) {
    statusBox.textContent = text;
    statusBox.className = "upz-status " + (bad ? "upz-bad" : "upz-good");
  }
  function wall(date) { return date.toISOString().slice(0, 16); }  // neutral "UTC" clock -> wall time
  function query(extra) {
    var p = new URLSearchParams({ timezone: tz });
    Object.keys(filters).forEach(function (k) { if (filters[k]) p.set(k, filters[k]); });
    Object.keys(extra || {}).forEach(function (k) { if (extra[k]) p.set(k, extra[k]); });
    return p.toString();
  }
  function post(url, body) {
    return fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf, "Accept": "application/json" },
      body: JSON.stringify(body)
    }).then(function (r) { return r.json().then(function (j) { return { ok: r.ok, status: r.status, body: j }; }); });
  }
  function apptUrl(id, tail) { return base.replace(/\/$/, "") + "/appointment/" + encodeURIComponent(id) + (tail || ""); }
  function refetch() { calendars.forEach(function (c) { c.refetchEvents(); }); }

  function source(extra) {
    return function (info, ok, fail) {
      var p = query(Object.assign({ start: info.startStr.replace(/Z$/, ""), end: info.endStr.replace(/Z$/, "") }, extra));
      fetch(eventsUrl + "?" + p, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) { if (!r.ok) throw new Error("HTTP " + r.status); return r.json(); })
        .then(ok, function (e) { say("Could not load appointments: " + e.message, true); fail(e); });
    };
  }

  function onDrop(info, column) {
    var body = { start: wall(info.event.start), timezone: tz };
    if (column && column.kind === "staff") body.staff = column.key;
    say("Moving…");
    post(apptUrl(info.event.id, "/move"), body).then(function (res) {
      if (res.ok) {
        say("Moved to " + res.body.start.replace("T", " ") + " (" + tz + "). The customer is notified.");
        refetch();
      } else {
        info.revert();
        var e = res.body.error || {};
        say("Not moved: " + (e.message || ("HTTP " + res.status)), true);
      }
    }, function () { info.revert(); say("Not moved: the server did not answer.", true); });
  }

  function onDateClick(info, column) {
    if (!bookUrl) return;
    var p = new URLSearchParams({ start: wall(info.date), timezone: tz });
    if (column && column.kind === "staff") p.set("staff", column.key);
    if (column && column.kind === "location") p.set("location", column.key);
    if (filters.service) p.set("service", filters.service);
    if (filters.staff) p.set("staff", filters.staff);
    window.location.href = bookUrl + "?" + p.toString();
  }

  function el(tag, text, attrs) {
    var e = document.createElement(tag);
    if (text != null) e.textContent = text;
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    return e;
  }

  function showError(text) {
    var box = document.getElementById("upz-cal-dialog-error");
    box.textContent = text || ""; box.hidden = !text;
  }

  function openDetails(id) {
    fetch(apptUrl(id) + "?" + query({}), { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.json(); }).then(function (d) {
        if (d.error) { say(d.error.message, true); return; }
        document.getElementById("upz-cal-dialog-title").textContent = d.service.name + " · " + d.start.replace("T", " ");
        var body = document.getElementById("upz-cal-dialog-body");
        body.textContent = "";
        showError("");
        var dl = el("dl", null, { "class": "dl-horizontal" });
        function row(k, v) { if (v == null || v === "") return; dl.appendChild(el("dt", k)); dl.appendChild(el("dd", String(v))); }
        row("Status", d.status.replace("_", "-"));
        row("When", d.start.replace("T", " ") + " – " + d.end.slice(11) + " (" + d.timezone + ")");
        row("Staff", d.staff.name);
        row("Location", d.location && d.location.name);
        if (d.customer) { row("Customer", d.customer.name); row("Email", d.customer.email); row("Phone", d.customer.phone); }
        row("Source", d.source);
        row("Price", d.price && (d.price + " " + (d.currency || "")));
        row("Notes", d.notes);
        row("Cancel reason", d.cancel_reason);
        Object.keys(d.answers || {}).forEach(function (k) { row(k, [].concat(d.answers[k]).join(", ")); });
        d.consents.forEach(function (c) { row("Consent", c.kind + " v" + c.version + " · " + c.at.replace("T", " ")); });
        body.appendChild(dl);
        if (d.meeting && d.meeting.url) {
          var a = el("a", "Join the meeting", { href: d.meeting.url, rel: "noopener noreferrer", target: "_blank" });
          body.appendChild(el("p")).appendChild(a);
        }
        var hist = el("ul", null, { "aria-label": "History" });
        d.history.forEach(function (h) { hist.appendChild(el("li", h.at.replace("T", " ") + " " + (h.from || "") + " → " + h.to + " · " + h.actor + (h.reason ? " · " + h.reason : ""))); });
        body.appendChild(el("h3", "History", { "class": "h5" })); body.appendChild(hist);
        var sent = el("ul", null, { "aria-label": "Notifications" });
        d.notifications.forEach(function (n) { sent.appendChild(el("li", n.kind + " · " + n.channel + " · " + n.recipient + " · " + n.status)); });
        if (d.notifications.length) { body.appendChild(el("h3", "Notifications", { "class": "h5" })); body.appendChild(sent); }
        actions(d);
        if (!dialog.open) dialog.showModal();
      });
  }

  function actions(d) {
    var box = document.getElementById("upz-cal-dialog-actions");
    box.textContent = "";
    if (!mayAct || d.status === "cancelled") return;
    function button(label, fn) { var b = el("button", label, { type: "button", "class": "btn btn-default btn-sm" }); b.addEventListener("click", fn); box.appendChild(b); return b; }
    function act(payload) {
      post(apptUrl(d.id, "/act"), payload).then(function (res) {
        if (res.ok) { refetch(); openDetails(d.id); say("Saved."); } else showError((res.body.error || {}).message);
      });
    }
    if (d.status === "pending") button("Confirm", function () { act({ action: "confirm" }); });
    button("Completed", function () { act({ action: "completed" }); });
    button("No-show", function () { act({ action: "no_show" }); });
    button("Reschedule…", function () { slotsPicker(d, d.start.slice(0, 10)); });
    var reason = el("input", null, { type: "text", id: "upz-cancel-reason", "class": "form-control input-sm", placeholder: "reason" });
    var note = el("input", null, { type: "text", id: "upz-note", "class": "form-control input-sm", placeholder: "note" });
    box.appendChild(el("label", "Cancel reason", { "for": "upz-cancel-reason", "class": "sr-only" })); box.appendChild(reason);
    button("Cancel appointment", function () { act({ action: "cancel", reason: reason.value }); });
    box.appendChild(el("label", "Note", { "for": "upz-note", "class": "sr-only" })); box.appendChild(note);
    button("Add note", function () { act({ action: "note", note: note.value }); });
  }

  function slotsPicker(d, date) {
    fetch(apptUrl(d.id, "/slots") + "?" + query({ date: date }), { credentials: "same-origin" })
      .then(function (r) { return r.json(); }).then(function (res) {
        var box = document.getElementById("upz-cal-dialog-body");
        box.textContent = "";
        box.appendChild(el("p", "Free times of " + d.staff.name + " from " + date + " (" + res.timezone + "):"));
        var list = el("div", null, { role: "group", "aria-label": "Free times", "class": "upz-slots" });
        (res.slots || []).forEach(function (s) {
          var b = el("button", s.replace("T", " "), { type: "button", "class": "btn btn-default btn-xs" });
          b.addEventListener("click", function () {
            post(apptUrl(d.id, "/move"), { start: s, timezone: tz }).then(function (r) {
              if (r.ok) { refetch(); openDetails(d.id); say("Moved to " + s.replace("T", " ") + "."); } else showError((r.body.error || {}).message);
            });
          });
          list.appendChild(b);
        });
        if (!(res.slots || []).length) list.appendChild(el("p", "No free time this week."));
        box.appendChild(list);
        var next = new Date(date + "T00:00:00Z"); next.setUTCDate(next.getUTCDate() + 7);
        var more = el("button", "Next week", { type: "button", "class": "btn btn-link btn-sm" });
        more.addEventListener("click", function () { slotsPicker(d, next.toISOString().slice(0, 10)); });
        box.appendChild(more);
      });
  }

  document.getElementById("upz-cal-dialog-close").addEventListener("click", function () { dialog.close(); });

  function options(column) {
    var initial = root.dataset.view || (narrow ? "listWeek" : (column ? "timeGridDay" : "timeGridWeek"));
    return {
      timeZone: "UTC", locale: document.documentElement.lang || "en-gb", firstDay: 1, nowIndicator: false,
      initialView: initial, initialDate: root.dataset.date || undefined,
      headerToolbar: column ? false : { left: "prev,next today", center: "title", right: "timeGridDay,timeGridWeek,dayGridMonth,listWeek" },
      slotMinTime: "06:00:00", slotMaxTime: "22:00:00", scrollTime: "08:00:00", allDaySlot: false, height: "auto",
      eventInteractive: true, editable: mayAct, eventDurationEditable: false, selectable: false,
      dayHeaderContent: column ? function () { return column.name; } : undefined,
      events: source(column ? (column.kind === "staff" ? { staff: column.key } : { location: column.key }) : {}),
      eventDrop: function (info) { onDrop(info, column); },
      eventClick: function (info) { info.jsEvent.preventDefault(); openDetails(info.event.id); },
      dateClick: function (info) { onDateClick(info, column); },
      eventDidMount: function (info) {
        var p = info.event.extendedProps;
        info.el.setAttribute("aria-label", info.event.title + ", " + wall(info.event.start).replace("T", " ") + ", " + p.staffName + ", " + p.status);
        info.el.dataset.appointment = info.event.id;
      }
    };
  }

  if (resources.length && !narrow) {
    var bar = el("div", null, { "class": "upz-colbar" });
    var title = el("strong", "", { "aria-live": "polite" });
    function go(fn) { calendars.forEach(function (c) { fn(c); }); title.textContent = calendars[0].view.title; }
    [["‹ previous day", function (c) { c.prev(); }], ["today", function (c) { c.today(); }], ["next day ›", function (c) { c.next(); }]]
      .forEach(function (b) { var x = el("button", b[0], { type: "button", "class": "btn btn-default btn-sm" }); x.addEventListener("click", function () { go(b[1]); }); bar.appendChild(x); });
    bar.appendChild(title);
    root.appendChild(bar);
    var row = el("div", null, { "class": "upz-columns" });
    root.appendChild(row);
    var kind = (root.dataset.group || "staff");
    resources.forEach(function (r) {
      var cell = el("div", null, { "class": "upz-column", "data-resource": r.key });
      row.appendChild(cell);
      var c = new FullCalendar.Calendar(cell, options({ kind: kind, key: r.key, name: r.name }));
      c.render();
      calendars.push(c);
    });
    title.textContent = calendars[0].view.title;
  } else {
    var c = new FullCalendar.Calendar(root.appendChild(el("div")), options(null));
    c.render();
    calendars.push(c);
  }
  window.upzCalendars = calendars;
})();
