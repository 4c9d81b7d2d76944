// "My exports": while an export is queued or running, ask for the list every 3 s and show
// progress in place; reload once every export has ended, so its download link appears.
(function () {
  "use strict";
  var table = document.getElementById("upz-exports");
  var url = table && table.getAttribute("data-poll");
  if (!url) { return; }
  function tick() {
    fetch(url, {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (data) {
        if (!data) { return; }
        var busy = false;
        data.exports.forEach(function (item) {
          var row = table.querySelector('tr[data-id="' + item.id + '"]');
          if (!row) { return; }
          var bar = row.querySelector("progress");
          if (bar) { bar.value = item.progress; bar.textContent = item.progress + "%"; }
          if (item.status === "queued" || item.status === "running") { busy = true; }
        });
        if (busy) { window.setTimeout(tick, 3000); } else { window.location.reload(); }
      })
      .catch(function () { window.setTimeout(tick, 10000); });
  }
  window.setTimeout(tick, 3000);
})();
