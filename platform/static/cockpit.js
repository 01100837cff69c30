// The bureau's cockpit: fills the page's figures from the platform's JSON API, then again
// every `data-refresh` seconds. Only what changed is written (text, a bar's width, a
// tile's colour, the chart's data), so a refresh never blanks the wall display. A failed
// refresh keeps the last figures and says since when they are shown. Every word comes
// from the page (data-* attributes and its elements); this script holds none.
(function () {
  "use strict";

  var page = document.body;
  var offset = Number(page.dataset.utcOffset) || 0;
  var number = new Intl.NumberFormat(page.dataset.lang, { maximumFractionDigits: 0 });
  var decimal = new Intl.NumberFormat(page.dataset.lang, { maximumFractionDigits: 1, minimumFractionDigits: 1 });
  var trendPlot = null;
  var WITHHELD = ["running_rate", "energy_kwh", "output"];
  // The axes' steps: whole days, whole enterprises.
  var DAY_STEPS = [86400, 2 * 86400, 3 * 86400, 7 * 86400, 14 * 86400];
  var COUNT_STEPS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000];

  function pad(n) { return n < 10 ? "0" + n : String(n); }

  // A time in the program's zone (Beijing), whatever the display's own zone.
  function zoned(ms) {
    var d = new Date(ms + offset * 60000);
    return d.getUTCFullYear() + "-" + pad(d.getUTCMonth() + 1) + "-" + pad(d.getUTCDate()) + " " +
      pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes()) + ":" + pad(d.getUTCSeconds());
  }

  function percent(share) { return share == null ? "--" : decimal.format(share * 100) + "%"; }

  function fill(template, values) {
    return template.replace(/\{(\w+)\}/g, function (_, key) { return values[key]; });
  }

  function setText(el, text) { if (el && el.textContent !== text) { el.textContent = text; } }
  function setStyle(el, name, value) { if (el && el.style[name] !== value) { el.style[name] = value; } }
  function part(el, name) { return el.querySelector('[data-part="' + name + '"]'); }

  function get(url) {
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) {
        if (r.status === 401) { throw new Error("signed-out"); }
        if (!r.ok) { throw new Error(url + ": " + r.status); }
        var date = Date.parse(r.headers.get("Date") || "");
        return r.json().then(function (body) { return { body: body, at: isNaN(date) ? Date.now() : date }; });
      });
  }

  function showTargets(program) {
    var list = document.getElementById("targets");
    var template = document.getElementById("target-row");
    program.targets.forEach(function (target) {
      if (target.id.indexOf("on_cloud_industry:") === 0) { return; } // the industries panel
      var li = list.querySelector('[data-target="' + target.id + '"]');
      if (!li) {
        li = template.content.firstElementChild.cloneNode(true);
        li.dataset.target = target.id;
        part(li, "achieved").dataset.figure = "program." + target.id + ".achieved";
        list.appendChild(li);
      }
      setText(part(li, "label"), target.label);
      setText(part(li, "achieved"), number.format(target.achieved));
      var share = target.base ? target.achieved / target.base : 0;
      if (target.goal_share != null) {
        setText(part(li, "goal"), "/ " + number.format(target.base));
        setText(part(li, "note"), fill(page.dataset.shareNote, {
          share: percent(share), goal: percent(target.goal_share)
        }));
      } else {
        setText(part(li, "goal"), target.goal_count == null ? "" : "/ " + number.format(target.goal_count));
        setText(part(li, "note"), target.goal_count == null ? "" : fill(page.dataset.countNote, {
          goal: number.format(target.goal_count)
        }));
      }
      var progress = target.progress;
      setText(part(li, "progress"), progress == null ? "--" : percent(progress));
      setStyle(part(li, "fill"), "width", progress == null ? "0%" : Math.min(progress, 1) * 100 + "%");
      li.classList.toggle("met", !!target.met);
    });
  }

  function showOnboarding(o) {
    setText(document.querySelector('[data-figure="kpi.registered"]'), number.format(o.total.registered));
    setText(document.querySelector('[data-figure="kpi.on_cloud"]'), number.format(o.total.on_cloud));
    setText(document.querySelector('[data-figure="kpi.active"]'), number.format(o.total.active));
    o.by_district.forEach(function (d) {
      var tile = document.querySelector('[data-district="' + d.district + '"]');
      if (!tile) { return; }
      var rate = d.registered ? d.on_cloud / d.registered : 0;
      setText(tile.querySelector("b"), number.format(d.on_cloud));
      setText(part(tile, "registered"), number.format(d.registered));
      setText(part(tile, "rate"), d.registered ? percent(rate) : "--");
      // From the panel's blue (none on the cloud) to bright cyan (all of them).
      var mix = function (a, b) { return Math.round(a + (b - a) * rate); };
      setStyle(tile, "backgroundColor", "rgb(" + mix(23, 14) + ", " + mix(52, 165) + ", " + mix(95, 233) + ")");
    });
    o.by_industry.forEach(function (i) {
      var li = document.querySelector('.industry-list [data-industry="' + i.industry + '"]');
      if (!li) { return; }
      setText(li.querySelector("b"), number.format(i.on_cloud));
      setText(part(li, "goal"), "/ " + number.format(i.target));
      setStyle(part(li, "fill"), "width", (i.target ? Math.min(i.on_cloud / i.target, 1) * 100 : 0) + "%");
    });
  }

  // Day labels of the trend's axis: 12月7日 in Chinese, 12-07 otherwise.
  function dayLabel(ts) {
    var d = new Date((ts + offset * 60) * 1000);
    return page.dataset.lang === "zh-CN" ? (d.getUTCMonth() + 1) + "月" + d.getUTCDate() + "日"
      : pad(d.getUTCMonth() + 1) + "-" + pad(d.getUTCDate());
  }

  function showTrend(days) {
    var el = document.getElementById("trend");
    var data = [
      days.map(function (d) { return Date.parse(d.date + "T00:00:00Z") / 1000 - offset * 60; }),
      days.map(function (d) { return d.on_cloud; }),
      days.map(function (d) { return d.in_program_on_cloud; })
    ];
    if (trendPlot) { trendPlot.setData(data); return; }
    var axis = { stroke: "#8fb3dc", grid: { stroke: "#163a66" }, ticks: { stroke: "#163a66" }, font: "16px sans-serif" };
    el.textContent = "";
    trendPlot = new uPlot({
      // The legend (one line under the plot) names the two series.
      width: el.clientWidth, height: el.clientHeight - 44,
      legend: { show: true, live: false },
      cursor: { show: false },
      series: [
        { label: page.dataset.labelDate, value: function (u, ts) { return ts == null ? "--" : dayLabel(ts); } },
        { label: page.dataset.labelOnCloud, stroke: "#38bdf8", width: 3, fill: "rgba(56,189,248,.12)" },
        { label: page.dataset.labelInProgram, stroke: "#34d399", width: 3 }
      ],
      axes: [
        Object.assign({}, axis, { space: 110, incrs: DAY_STEPS, values: function (u, splits) { return splits.map(dayLabel); } }),
        Object.assign({}, axis, { size: 70, incrs: COUNT_STEPS, values: function (u, splits) { return splits.map(function (v) { return number.format(v); }); } })
      ],
      scales: { x: { time: false } }
    }, data, el);
    el.dataset.ready = "1";
  }

  // A withheld aggregate keeps its counts; its values are not shown.
  function monitoringCell(day, key) {
    if (day.withheld && WITHHELD.indexOf(key) >= 0) { return { text: page.dataset.withheldMark, withheld: true }; }
    var v = day[key];
    if (v == null) { return { text: "--", withheld: false }; }
    return { text: key === "running_rate" ? percent(v) : number.format(v), withheld: false };
  }

  function showMonitoring(m) {
    var days = m.total.days;
    if (!days.length) { return; }
    var today = days[days.length - 1];
    setText(document.getElementById("monitoring-date"), today.date);
    setText(document.querySelector('[data-figure="kpi.machines"]'), number.format(today.machines));
    ["running_rate", "energy_kwh", "output", "enterprises", "machines"].forEach(function (key) {
      var figure = document.querySelector('[data-figure="monitoring.' + key + '"]');
      if (figure) {
        var cell = monitoringCell(today, key);
        setText(figure, cell.text);
        figure.classList.toggle("withheld", cell.withheld);
        figure.title = cell.withheld ? page.dataset.withheld : "";
      }
      var spark = document.querySelector('[data-spark="' + key + '"]');
      if (!spark) { return; }
      var values = days.map(function (d) { return d.withheld && WITHHELD.indexOf(key) >= 0 ? null : d[key]; });
      var max = Math.max.apply(null, values.map(function (v) { return v || 0; })) || 1;
      while (spark.children.length < values.length) { spark.appendChild(document.createElement("i")); }
      values.forEach(function (v, k) {
        var bar = spark.children[k];
        bar.className = v == null ? "none" : "";
        setStyle(bar, "height", (v == null ? 8 : Math.max(v / max, 0.04) * 100) + "%");
        bar.title = days[k].date;
      });
    });
    m.groups.forEach(function (g) {
      var row = document.querySelector('.by-industry [data-industry="' + g.group + '"]');
      if (!row || !g.days.length) { return; }
      var day = g.days[g.days.length - 1];
      setText(part(row, "machines"), number.format(day.machines));
      ["running_rate", "energy_kwh", "output"].forEach(function (key) {
        var cell = monitoringCell(day, key);
        var td = part(row, key);
        setText(td, cell.text);
        td.classList.toggle("withheld", cell.withheld);
        td.title = cell.withheld ? page.dataset.withheld : "";
      });
    });
  }

  function showIntegrators(list) {
    var ranked = list.slice().sort(function (a, b) {
      return b.on_cloud - a.on_cloud || b.active - a.active || a.name.localeCompare(b.name);
    });
    document.querySelectorAll("#integrators tr").forEach(function (row, k) {
      var s = ranked[k];
      setText(part(row, "name"), s ? s.name : "");
      setText(part(row, "on_cloud"), s ? number.format(s.on_cloud) : "");
      setText(part(row, "active"), s ? number.format(s.active) : "");
    });
  }

  var shown = {
    program: showTargets,
    onboarding: showOnboarding,
    trend: showTrend,
    monitoring: showMonitoring,
    integrators: showIntegrators
  };

  function refresh() {
    var sources = {
      program: "/api/v1/stats/program",
      onboarding: "/api/v1/stats/onboarding",
      trend: "/api/v1/stats/onboarding/daily?days=" + page.dataset.trendDays,
      monitoring: "/api/v1/stats/monitoring?by=industry&days=" + page.dataset.monitoringDays,
      integrators: "/api/v1/stats/integrators"
    };
    var names = Object.keys(sources);
    return Promise.allSettled(names.map(function (n) { return get(sources[n]); })).then(function (results) {
      var failed = [];
      var at = 0;
      results.forEach(function (r, k) {
        if (r.status === "fulfilled") {
          shown[names[k]](r.value.body);
          at = Math.max(at, r.value.at);
        } else {
          failed.push(r.reason);
        }
      });
      var link = document.getElementById("link");
      if (at) {
        setText(document.getElementById("data-time"), zoned(at));
        page.dataset.shownAt = String(at);
      }
      if (!failed.length) {
        link.className = "link";
        setText(link, "");
      } else if (failed.some(function (e) { return e.message === "signed-out"; })) {
        link.className = "link down";
        setText(link, page.dataset.signedOut);
      } else {
        link.className = "link stale";
        setText(link, page.dataset.stale);
      }
      page.dataset.ready = failed.length ? "partial" : "1";
    });
  }

  refresh().finally(function () {
    setInterval(refresh, (Number(page.dataset.refresh) || 60) * 1000);
  });
})();
