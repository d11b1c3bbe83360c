// Auto-refresh of the balancer manager page, its only script: when the
// page was asked for with ?refresh=N (data-refresh on <body>), it reloads
// it every N seconds, but not while a form field has the focus. The page
// works without it.
(function () {
  "use strict";
  var s = parseInt(document.body.getAttribute("data-refresh"), 10);
  if (!(s > 0)) {
    return;
  }
  function tick() {
    var a = document.activeElement;
    if (a && (a.tagName === "INPUT" || a.tagName === "BUTTON")) {
      setTimeout(tick, s * 1000);
      return;
    }
    location.replace(location.pathname + "?refresh=" + s);
  }
  setTimeout(tick, s * 1000);
})();
