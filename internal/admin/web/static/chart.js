// The balancer manager page's live chart: every two seconds it asks the
// manager for GET /api/rates (the page's own origin, with the browser's
// credentials) and draws each member's requests per second over the last
// two minutes as an inline SVG, with a legend giving the latest rate.
// Everything else on the page works without it.
(function () {
  "use strict";
  var svg = document.getElementById("rates");
  var legend = document.getElementById("rates-legend");
  var status = document.getElementById("rates-status");
  if (!svg || !legend || !status || !window.fetch) {
    return;
  }
  var NS = "http://www.w3.org/2000/svg";
  var W = 640, H = 200, L = 44, R = 8, T = 10, B = 22; // size and margins
  var PERIOD = 2000, SLOW = 10000, COLORS = 8;
  // location.origin has no user:password@, which fetch would refuse.
  var url = location.origin + "/api/rates";
  var failures = 0;

  function el(name, attrs, text) {
    var e = document.createElementNS(NS, name);
    for (var k in attrs) {
      e.setAttribute(k, attrs[k]);
    }
    if (text !== undefined) {
      e.textContent = text;
    }
    return e;
  }

  // niceMax rounds up to 1, 2 or 5 times a power of ten.
  function niceMax(v) {
    if (!(v > 0)) {
      return 1;
    }
    var p = Math.pow(10, Math.floor(Math.log10(v)));
    var steps = [1, 2, 5, 10];
    for (var i = 0; i < steps.length; i++) {
      if (v <= steps[i] * p) {
        return steps[i] * p;
      }
    }
    return 10 * p;
  }

  function draw(data) {
    var now = data.now_ms, span = data.window_s * 1000, max = 0;
    data.series.forEach(function (s) {
      s.points.forEach(function (p) {
        max = Math.max(max, p[1]);
      });
    });
    max = niceMax(max);
    var x = function (t) { return L + (W - L - R) * (1 - (now - t) / span); };
    var y = function (v) { return T + (H - T - B) * (1 - v / max); };
    while (svg.firstChild) {
      svg.removeChild(svg.firstChild);
    }
    [0, 0.5, 1].forEach(function (f) {
      svg.appendChild(el("line", {"class": "grid", x1: L, x2: W - R, y1: y(max * f), y2: y(max * f)}));
      svg.appendChild(el("text", {"class": "axis", x: L - 4, y: y(max * f) + 4, "text-anchor": "end"}, String(max * f)));
    });
    svg.appendChild(el("text", {"class": "axis", x: L, y: H - 6}, "-" + data.window_s / 60 + " min"));
    svg.appendChild(el("text", {"class": "axis", x: W - R, y: H - 6, "text-anchor": "end"}, "now"));
    while (legend.firstChild) {
      legend.removeChild(legend.firstChild);
    }
    data.series.forEach(function (s, i) {
      var pts = s.points.filter(function (p) { return now - p[0] <= span; });
      var c = "c" + (i % COLORS);
      if (pts.length > 0) {
        svg.appendChild(el("polyline", {
          "class": "series " + c, "data-route": s.route,
          points: pts.map(function (p) { return x(p[0]).toFixed(1) + "," + y(p[1]).toFixed(1); }).join(" ")
        }));
      }
      var last = pts.length > 0 ? pts[pts.length - 1][1] : 0;
      var li = document.createElement("li");
      li.className = c;
      li.setAttribute("data-route", s.route);
      li.setAttribute("data-rate", String(last));
      li.textContent = s.route + " " + last.toFixed(1) + "/s" + (s.state === "ok" ? "" : " (" + s.state + ")");
      legend.appendChild(li);
    });
  }

  function tick() {
    fetch(url, {credentials: "same-origin", cache: "no-store", headers: {"Accept": "application/json"}})
      .then(function (r) {
        if (!r.ok) {
          throw new Error("GET /api/rates: " + r.status);
        }
        return r.json();
      })
      .then(function (data) {
        failures = 0;
        draw(data);
        status.textContent = "Live: updated every " + PERIOD / 1000 + " s, last at " + new Date().toLocaleTimeString() + ".";
      })
      .catch(function (e) {
        failures++;
        status.textContent = "The chart cannot update: " + e.message;
      })
      .then(function () {
        setTimeout(tick, failures > 3 ? SLOW : PERIOD);
      });
  }
  status.textContent = "Loading the chart…";
  tick();
})();
