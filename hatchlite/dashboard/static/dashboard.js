// hatchlite dashboard: keep the page's live regions ([data-live][id]) current by
// fetching the same page every second and swapping in the regions that changed.
// Plain JavaScript, no dependencies. Open/closed <details> keep the user's choice.
(function () {
  "use strict";
  var INTERVAL_MS = 1000;
  var served = {}; // region id -> the HTML the server last sent for it
  var busy = false;

  function regions() {
    return Array.prototype.slice.call(document.querySelectorAll("[data-live][id]"));
  }

  function detailsState(root) {
    var state = {};
    root.querySelectorAll("details[id]").forEach(function (d) { state[d.id] = d.open; });
    return state;
  }

  function indicate(ok) {
    var dot = document.getElementById("live-indicator");
    if (dot) { dot.className = ok ? "live ok" : "live stale"; }
  }

  function refresh() {
    var live = regions();
    if (busy || document.hidden || !live.length) { return; }
    busy = true;
    fetch(window.location.href, {
      headers: { "X-Hatchlite-Live": "1" },
      credentials: "same-origin",
      cache: "no-store"
    }).then(function (response) {
      if (!response.ok) { throw new Error("HTTP " + response.status); }
      return response.text();
    }).then(function (html) {
      var doc = new DOMParser().parseFromString(html, "text/html");
      live.forEach(function (old) {
        var fresh = doc.getElementById(old.id);
        if (!fresh || fresh.innerHTML === served[old.id]) { return; }
        if (old.contains(document.activeElement) && document.activeElement !== document.body &&
            document.activeElement.matches("input, select, textarea")) {
          return; // the user is typing here: try again on the next refresh
        }
        served[old.id] = fresh.innerHTML;
        var open = detailsState(old);
        var node = document.importNode(fresh, true);
        old.replaceWith(node);
        node.querySelectorAll("details[id]").forEach(function (d) {
          if (Object.prototype.hasOwnProperty.call(open, d.id)) { d.open = open[d.id]; }
        });
      });
      indicate(true);
    }).catch(function () {
      indicate(false);
    }).then(function () {
      busy = false;
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    regions().forEach(function (r) { served[r.id] = r.innerHTML; });
    if (regions().length) {
      indicate(true);
      window.setInterval(refresh, INTERVAL_MS);
    }
  });
})();
