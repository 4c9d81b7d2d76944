/* Analytics page: each figure from /api/v1/analytics/<figure> (session login), drawn with Chart.js. */
(function () {
  "use strict";
  var root = document.getElementById("upz-analytics");
  if (!root || !window.Chart) return;
  var api = root.dataset.api, qs = root.dataset.query || "";
  var previous = JSON.parse(root.dataset.previous || "{}");
  function get(metric, extra) {
    var p = new URLSearchParams(qs);
    Object.keys(extra || {}).forEach(function (k) { p.set(k, extra[k]); });
    return fetch(api + metric + "?" + p.toString(), { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.json(); });
  }
  function pct(v) { return v == null ? "–" : (v * 100).toFixed(1) + " %"; }
  function summary(id, text) { document.getElementById("sum-" + id).textContent = text; }
  function chart(id, config) { return new Chart(document.getElementById("chart-" + id), config); }
  var colours = ["#1f5fa8", "#a12622", "#2e7d32", "#8a4b00", "#7b3fa0", "#00697a"];

  Promise.all([get("bookings"), get("bookings", previous)]).then(function (res) {
    var now = res[0], before = res[1];
    if (now.error) { summary("bookings", now.error.message); return; }
    summary("bookings", now.total + " bookings; " + now.previous.total + " in the previous period" +
      (now.trend == null ? "" : " (" + (now.trend >= 0 ? "+" : "") + Math.round(now.trend * 100) + " %)"));
    chart("bookings", { type: "line", data: {
      labels: now.series.map(function (s) { return s.period; }),
      datasets: [
        { label: "bookings", data: now.series.map(function (s) { return s.bookings; }), borderColor: colours[0] },
        { label: "previous period", data: before.series.map(function (s) { return s.bookings; }), borderColor: "#888", borderDash: [4, 4] }
      ] } });
  });
  ["cancellations", "no_shows"].forEach(function (m, i) {
    get(m).then(function (d) {
      if (d.error) return;
      summary(m, pct(d.rate) + " (previous period " + pct(d.previous.rate) + ")");
      chart(m, { type: "bar", data: { labels: d.series.map(function (s) { return s.period; }),
        datasets: [{ label: "rate %", data: d.series.map(function (s) { return s.rate == null ? 0 : s.rate * 100; }), backgroundColor: colours[1 + i] }] } });
    });
  });
  get("revenue").then(function (d) {
    if (d.error) return;
    summary("revenue", d.currencies.map(function (c) { return c.currency + ": booked " + c.booked + ", realised " + c.realised + ", lost " + c.lost_no_show + " (no-show) + " + c.lost_cancelled + " (cancelled)"; }).join("; "));
    var c = d.currencies[0];
    chart("revenue", { type: "line", data: { labels: c.series.map(function (s) { return s.period; }),
      datasets: d.currencies.map(function (cur, i) {
        return { label: "booked " + cur.currency, data: cur.series.map(function (s) { return +s.booked; }), borderColor: colours[i % colours.length] };
      }).concat(d.currencies.map(function (cur, i) {
        return { label: "realised " + cur.currency, data: cur.series.map(function (s) { return +s.realised; }), borderColor: colours[(i + 2) % colours.length], borderDash: [4, 4] };
      })) } });
  });
  get("utilisation").then(function (d) {
    if (d.error) return;
    summary("utilisation", pct(d.utilisation) + " of " + Math.round(d.available_minutes / 60) + " available hours booked");
    chart("utilisation", { type: "bar", options: { indexAxis: "y" }, data: { labels: d.staff.map(function (s) { return s.name; }),
      datasets: [{ label: "utilisation %", data: d.staff.map(function (s) { return s.utilisation == null ? 0 : s.utilisation * 100; }), backgroundColor: colours[2] }] } });
  });
  get("lead_time").then(function (d) {
    if (d.error) return;
    summary("lead_time", d.appointments ? ("median " + d.median_hours + " h, mean " + d.mean_hours + " h, 90 % within " + d.p90_hours + " h") : "no bookings");
    chart("lead_time", { type: "bar", data: { labels: d.buckets.map(function (b) { return b.bucket; }),
      datasets: [{ label: "bookings", data: d.buckets.map(function (b) { return b.count; }), backgroundColor: colours[3] }] } });
  });
  get("sources").then(function (d) {
    if (d.error) return;
    summary("sources", d.sources.map(function (s) { return s.source + " " + s.bookings; }).join(", ") || "no bookings");
    chart("sources", { type: "doughnut", data: { labels: d.sources.map(function (s) { return s.source; }),
      datasets: [{ data: d.sources.map(function (s) { return s.bookings; }), backgroundColor: colours }] } });
  });
  get("popular").then(function (d) {
    if (d.error) return;
    summary("popular", d.services.slice(0, 3).map(function (s) { return s.name + " " + s.bookings; }).join(", ") || "no bookings");
    chart("popular", { type: "bar", data: { labels: d.services.map(function (s) { return s.name; }),
      datasets: [{ label: "bookings", data: d.services.map(function (s) { return s.bookings; }), backgroundColor: colours[4] }] } });
    var max = Math.max.apply(null, [1].concat(d.heatmap.map(function (r) { return Math.max.apply(null, r); })));
    var days = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    var t = document.createElement("table"); t.className = "table table-condensed upz-heat";
    var cap = t.createCaption(); cap.textContent = "Bookings by weekday and hour (" + d.timezone + ")";
    var head = t.createTHead().insertRow(); head.appendChild(document.createElement("th"));
    for (var h = 0; h < 24; h++) { var th = document.createElement("th"); th.scope = "col"; th.textContent = h; head.appendChild(th); }
    var body = t.createTBody();
    d.heatmap.forEach(function (row, i) {
      var tr = body.insertRow(); var th = document.createElement("th"); th.scope = "row"; th.textContent = days[i]; tr.appendChild(th);
      row.forEach(function (n) {
        var td = tr.insertCell(); td.textContent = n || "";
        var a = n / max; td.style.background = "rgba(31,95,168," + a.toFixed(2) + ")"; td.style.color = a > 0.5 ? "#fff" : "#000";
      });
    });
    document.getElementById("heat").appendChild(t);
  });
})();
