// fieldlink platform UI: draws the charts with uPlot (served by the platform itself), and
// helps with the config editor.
// The data comes from same-origin JSON; the element's data-* attributes say where, and
// give the page's language, the program's time zone (minutes east of UTC, so a chart
// reads Beijing time whatever the browser's zone) and the labels.
(function () {
  "use strict";

  function width(el) { return Math.max(300, el.clientWidth); }

  // Tick steps of an axis of counts.
  var WHOLE = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000];

  function pad(n) { return n < 10 ? "0" + n : String(n); }

  // The calendar fields of `ts` (seconds) in the zone `offset` minutes east of UTC.
  function fields(ts, offset) {
    var d = new Date((ts + offset * 60) * 1000);
    return {
      y: d.getUTCFullYear(), mo: d.getUTCMonth() + 1, d: d.getUTCDate(),
      h: d.getUTCHours(), mi: d.getUTCMinutes(), s: d.getUTCSeconds()
    };
  }

  // The page's way of writing times: 24-hour clock; on the axes, zh dates (12月7日) or
  // ISO-like ones (12-07); in the legend, as on the pages (2026-12-07 11:36).
  function Clock(el) {
    this.zh = el.dataset.lang === "zh-CN";
    this.offset = Number(el.dataset.utcOffset) || 0;
    this.number = new Intl.NumberFormat(this.zh ? "zh-CN" : "en", { maximumFractionDigits: 3 });
  }
  Clock.prototype.day = function (f) {
    return this.zh ? f.mo + "月" + f.d + "日" : pad(f.mo) + "-" + pad(f.d);
  };
  Clock.prototype.year = function (f) { return this.zh ? f.y + "年" : String(f.y); };
  Clock.prototype.time = function (f, seconds) {
    return pad(f.h) + ":" + pad(f.mi) + (seconds ? ":" + pad(f.s) : "");
  };
  Clock.prototype.date = function (f) { return f.y + "-" + pad(f.mo) + "-" + pad(f.d); };
  // What uPlot needs for its splits to fall on the zone's midnights and hours: a Date
  // whose local fields are the zone's.
  Clock.prototype.tzDate = function () {
    var offset = this.offset;
    return function (ts) {
      var d = new Date(ts * 1000);
      return new Date(d.getTime() + (d.getTimezoneOffset() + offset) * 60000);
    };
  };
  // The x axis's labels: the time of day (a second line with the date where the day
  // changes), or the date (a second line with the year where it changes). The labels
  // drawn last are kept in data-x-ticks: a canvas has no text to read otherwise.
  Clock.prototype.ticks = function (el) {
    var self = this;
    return function (u, splits, axisIdx, space, incr) {
      var before = null;
      var labels = splits.map(function (ts) {
        var f = fields(ts, self.offset);
        var label;
        if (incr >= 86400 * 28) {
          label = self.zh ? f.y + "年" + f.mo + "月" : f.y + "-" + pad(f.mo);
        } else if (incr >= 86400) {
          label = self.day(f) + (before === null || before.y !== f.y ? "\n" + self.year(f) : "");
        } else {
          label = self.time(f, incr < 60);
          if (before === null || before.d !== f.d) { label += "\n" + self.day(f); }
        }
        before = f;
        return label;
      });
      el.dataset.xTicks = labels.join("|");
      return labels;
    };
  };
  Clock.prototype.numbers = function () {
    var number = this.number;
    return function (u, splits) { return splits.map(function (v) { return number.format(v); }); };
  };

  // A legend value: the hovered point's, or the latest one when nothing is hovered (uPlot
  // would show "--" until the cursor comes).
  function legend(show) {
    return function (u, v, si, idx) {
      if (idx == null) {
        var data = u.data[si];
        for (idx = data.length - 1; idx >= 0 && data[idx] == null; idx--) { /* skip gaps */ }
        if (idx < 0) { return "--"; }
        v = data[idx];
      }
      return v == null ? "--" : show(v);
    };
  }

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
    var clock = new Clock(el);
    var count = legend(function (v) { return clock.number.format(v); });
    fetch(el.dataset.url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.json(); })
      .then(function (days) {
        // Each day starts at midnight in the program's zone.
        var t = days.map(function (d) { return Date.parse(d.date + "T00:00:00Z") / 1000 - clock.offset * 60; });
        draw(el, {
          tzDate: clock.tzDate(),
          series: [
            { label: el.dataset.labelX, value: legend(function (ts) { return clock.date(fields(ts, clock.offset)); }) },
            { label: el.dataset.labelAll, stroke: "#1d3557", width: 2, value: count },
            { label: el.dataset.labelProgram, stroke: "#2a9d8f", width: 2, value: count }
          ],
          // Whole enterprises: no 0.5 on the count axis.
          axes: [{ values: clock.ticks(el) }, { size: 60, values: clock.numbers(), incrs: WHOLE }]
        }, [t, days.map(function (d) { return d.on_cloud; }), days.map(function (d) { return d.in_program_on_cloud; })]);
      })
      .catch(function (e) { fail(el, String(e)); });
  }

  function point(el) {
    var clock = new Clock(el);
    fetch(el.dataset.url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.json(); })
      .then(function (s) {
        var samples = document.getElementById("sample-count");
        if (samples) { samples.textContent = clock.number.format(s.samples); }
        if (!s.t.length) {
          el.textContent = el.dataset.noData;
          el.dataset.ready = "1";
          return;
        }
        var unit = el.dataset.unit ? " " + el.dataset.unit : "";
        var seconds = s.bucket_ms < 60000;
        var value = legend(function (v) { return clock.number.format(v); });
        var at = legend(function (ts) {
          var f = fields(ts, clock.offset);
          return clock.date(f) + " " + clock.time(f, seconds);
        });
        draw(el, {
          tzDate: clock.tzDate(),
          scales: { x: { time: true, range: [s.from / 1000, s.to / 1000] } },
          series: [
            { label: el.dataset.labelX, value: at },
            { label: el.dataset.labelMax + unit, stroke: "#e76f51", width: 1, value: value },
            { label: el.dataset.labelAvg + unit, stroke: "#1d3557", width: 2, value: value },
            { label: el.dataset.labelMin + unit, stroke: "#2a9d8f", width: 1, value: value }
          ],
          axes: [{ values: clock.ticks(el) }, { size: 70, values: clock.numbers() }]
        }, [s.t, s.max, s.avg, s.min]);
      })
      .catch(function (e) { fail(el, String(e)); });
  }

  // The config editor: keeps the line-number gutter in step with the text (and its
  // scrolling), moves the caret to a line when a listed line or error is clicked, and
  // inserts a template's [[device]] block. The page works without it: the gutter then
  // numbers the text as it came, and the listing names every error's line.
  function configEditor(text) {
    var gutter = document.getElementById("config-gutter");
    var lines = text.value.split("\n").length;
    function renumber() {
      var count = text.value.split("\n").length;
      if (count === lines) { return; }
      lines = count;
      // Marks of a refused text's errors belong to the text as it was sent.
      gutter.textContent = "";
      for (var n = 1; n <= count; n++) {
        var span = document.createElement("span");
        span.textContent = String(n);
        gutter.appendChild(span);
        gutter.appendChild(document.createTextNode("\n"));
      }
    }
    function goTo(line) {
      var rows = text.value.split("\n");
      var at = 0;
      for (var i = 0; i < line - 1 && i < rows.length; i++) { at += rows[i].length + 1; }
      text.focus();
      text.setSelectionRange(at, at);
      var height = parseFloat(getComputedStyle(text).lineHeight) || 20;
      text.scrollTop = Math.max(0, (line - 3) * height);
      gutter.scrollTop = text.scrollTop;
    }
    text.addEventListener("input", renumber);
    text.addEventListener("scroll", function () { gutter.scrollTop = text.scrollTop; });
    Array.prototype.forEach.call(document.querySelectorAll("#listing [data-line]"), function (el) {
      el.addEventListener("click", function () { goTo(Number(el.dataset.line)); });
    });
    var pick = document.getElementById("template-pick");
    var insert = document.getElementById("template-insert");
    if (pick && insert) {
      insert.addEventListener("click", function () {
        var option = pick.options[pick.selectedIndex];
        if (!option) { return; }
        var before = text.value.replace(/\s*$/, "");
        var line = before ? before.split("\n").length + 2 : 1;
        text.value = (before ? before + "\n\n" : "") + option.dataset.skeleton;
        renumber();
        goTo(line);
      });
    }
  }

  // The alarm rule form: a kind takes a threshold, a hysteresis and a target of its own
  // level (a gateway, a device or a point), as the options' data say; the fields a kind
  // does not take are disabled (so not sent) and the targets of other levels hidden. The
  // form works without it: the server then names what does not fit the kind.
  function ruleForm(kind) {
    var target = document.getElementById("rule-target");
    var threshold = document.getElementById("rule-threshold");
    var hysteresis = document.getElementById("rule-hysteresis");
    function fit() {
      var k = kind.options[kind.selectedIndex].dataset;
      threshold.disabled = k.threshold !== "true";
      hysteresis.disabled = k.hysteresis !== "true";
      var first = null;
      Array.prototype.forEach.call(target.options, function (o) {
        var fits = o.dataset.level === k.level;
        o.hidden = !fits;
        o.disabled = !fits;
        if (fits && !first) { first = o; }
      });
      var chosen = target.options[target.selectedIndex];
      if ((!chosen || chosen.disabled) && first) { first.selected = true; }
    }
    kind.addEventListener("change", fit);
    fit();
  }

  document.addEventListener("DOMContentLoaded", function () {
    var kind = document.getElementById("rule-kind");
    if (kind) { ruleForm(kind); }
    var d = document.getElementById("daily-chart");
    if (d) { daily(d); }
    var p = document.getElementById("point-chart");
    if (p) { point(p); }
    var config = document.getElementById("config-text");
    if (config) { configEditor(config); }
  });
}());
