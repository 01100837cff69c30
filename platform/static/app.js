// fieldlink platform UI: draws the charts with uPlot (served by the platform itself).
// The data comes from same-origin JSON; the element's data-* attributes say where.
(function () {
  "use strict";

  function width(el) { return Math.max(300, el.clientWidth); }

  function draw(el, opts, data) {
    el.textContent = "";
    var plot = new uPlot(Object.assign({ width: width(el), height: 320 }, opts), data, el);
    window.addEventListener("resize", function () { plot.setSize({ width: width(el), height: 320 }); });
    el.dataset.ready = "1";
    return plot;
  }

  function fail(el, text) {
    el.textContent = text;
    el.dataset.ready = "error";
  }

  function daily(el) {
    fetch(el.dataset.url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.json(); })
      .then(function (days) {
        var t = days.map(function (d) { return Date.parse(d.date + "T00:00:00+08:00") / 1000; });
        draw(el, {
          series: [
            {},
            { label: el.dataset.labelAll, stroke: "#1d3557", width: 2 },
            { label: el.dataset.labelProgram, stroke: "#2a9d8f", width: 2 }
          ],
          axes: [{}, { size: 60 }]
        }, [t, days.map(function (d) { return d.on_cloud; }), days.map(function (d) { return d.in_program_on_cloud; })]);
      })
      .catch(function (e) { fail(el, String(e)); });
  }

  function point(el) {
    fetch(el.dataset.url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.json(); })
      .then(function (s) {
        var count = document.getElementById("sample-count");
        if (count) { count.textContent = String(s.samples); }
        if (!s.t.length) {
          el.textContent = el.dataset.noData;
          el.dataset.ready = "1";
          return;
        }
        var unit = el.dataset.unit ? " " + el.dataset.unit : "";
        draw(el, {
          scales: { x: { time: true, range: [s.from / 1000, s.to / 1000] } },
          series: [
            {},
            { label: el.dataset.labelMax + unit, stroke: "#e76f51", width: 1 },
            { label: el.dataset.labelAvg + unit, stroke: "#1d3557", width: 2 },
            { label: el.dataset.labelMin + unit, stroke: "#2a9d8f", width: 1 }
          ],
          axes: [{}, { size: 70 }]
        }, [s.t, s.max, s.avg, s.min]);
      })
      .catch(function (e) { fail(el, String(e)); });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var d = document.getElementById("daily-chart");
    if (d) { daily(d); }
    var p = document.getElementById("point-chart");
    if (p) { point(p); }
  });
}());
