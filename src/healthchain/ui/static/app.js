/* Draws the dashboard's charts with the vendored uPlot. Data comes from JSON script
   elements (application/json, escaped by the server), never from inline code. */
(function () {
  "use strict";

  function fmtSeconds(s) {
    if (s == null) return "";
    if (s < 1) return (s * 1000).toFixed(s < 0.01 ? 1 : 0) + " ms";
    if (s < 60) return s.toFixed(s < 10 ? 2 : 1) + " s";
    if (s < 3600) return Math.floor(s / 60) + "m " + String(Math.floor(s % 60)).padStart(2, "0") + "s";
    return Math.floor(s / 3600) + "h " + String(Math.floor((s % 3600) / 60)).padStart(2, "0") + "m";
  }

  // Times read as the tables write them: 24-hour UTC, "2026-11-27 16:35:24", shortened
  // to what the axis's span needs.
  function fmtUtc(ts, span) {
    var iso = new Date(ts * 1e3).toISOString();  // 2026-11-27T16:35:24.000Z
    if (span == null) return iso.slice(0, 10) + " " + iso.slice(11, 19);
    if (span < 120) return iso.slice(11, 19);
    if (span < 86400) return iso.slice(11, 16);
    return iso.slice(5, 10) + " " + iso.slice(11, 16);
  }

  function markDrawn(el) {
    return function () { el.dataset.drawn = "true"; };
  }

  function durations(el, data) {
    var series = [{ label: "started (UTC)", value: function (u, v) { return v == null ? "—" : fmtUtc(v); } }];
    var columns = [data.x];
    data.series.forEach(function (s) {
      series.push({
        label: s.label,
        stroke: s.color,
        paths: function () { return null; },
        points: { show: true, size: 8, stroke: s.color, fill: s.color },
        value: function (u, v) { return v == null ? "—" : fmtSeconds(v); },
      });
      columns.push(s.y);
    });
    return new uPlot({
      width: el.clientWidth, height: 260,
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"); },
      scales: { x: { time: true },
                y: { range: function (u, min, max) { return [0, Math.max(max, 1e-3) * 1.1]; } } },
      axes: [
        { space: 90, values: function (u, vals) {
            var span = u.scales.x.max - u.scales.x.min;
            return vals.map(function (v) { return fmtUtc(v, span); });
          } },
        { label: "duration", size: 70, values: function (u, vals) { return vals.map(fmtSeconds); } },
      ],
      series: series,
      cursor: { points: { size: 10 } },
      hooks: { draw: [markDrawn(el)] },
    }, columns, el);
  }

  function histogram(el, data) {
    var bars = uPlot.paths.bars({ size: [0.92, Infinity], align: 0 });
    var half = data.width / 2;
    var lo = data.x[0] - half, hi = data.x[data.x.length - 1] + half;
    return new uPlot({
      width: el.clientWidth, height: 240,
      scales: { x: { time: false, range: function () { return [lo, hi]; } },
                y: { range: function (u, min, max) { return [0, Math.max(1, max) * 1.1]; } } },
      axes: [{ label: "latency (ms)" }, { label: "requests", size: 60 }],
      series: [
        { label: "latency (ms)", value: function (u, v) { return v == null ? "—" : (v - half).toFixed(1) + "–" + (v + half).toFixed(1); } },
        { label: "requests", stroke: "#0072B2", fill: "rgba(0,114,178,.55)", paths: bars, points: { show: false } },
        { label: "failed", stroke: "#D55E00", fill: "rgba(213,94,0,.85)", paths: bars, points: { show: false } },
      ],
      hooks: { draw: [markDrawn(el)] },
    }, [data.x, data.total, data.failed], el);
  }

  var kinds = { durations: durations, histogram: histogram };
  var charts = [];
  document.querySelectorAll("[data-chart]").forEach(function (el) {
    var source = document.getElementById(el.dataset.source);
    var draw = kinds[el.dataset.chart];
    if (!source || !draw) return;
    var chart = draw(el, JSON.parse(source.textContent));
    el.uplot = chart;  // for the browser tests, which check the axis labels
    charts.push([el, chart]);
  });
  window.addEventListener("resize", function () {
    charts.forEach(function (c) { c[1].setSize({ width: c[0].clientWidth, height: c[1].height }); });
  });
})();
