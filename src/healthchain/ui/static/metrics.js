/* Metric histories (one line per run over steps) and scores against latency, drawn with
   the vendored uPlot from JSON script elements the server wrote (already downsampled,
   with each series' colour). */
(function () {
  "use strict";

  function fmtValue(v) {
    if (v == null) return "—";
    return Math.abs(v) >= 1e6 || (v !== 0 && Math.abs(v) < 1e-3) ? v.toExponential(3) : String(+v.toPrecision(6));
  }

  function draw(el, data, options) {
    var chart = new uPlot(options, data, el);
    el.dataset.drawn = "true";
    el.uplot = chart;  // for the browser tests' label-overlap check
    window.addEventListener("resize", function () {
      chart.setSize({ width: el.clientWidth, height: chart.height });
    });
    return chart;
  }

  function metric(el, data) {
    var series = [{ label: "step", value: function (u, v) { return v == null ? "—" : Math.round(v); } }];
    data.ys.forEach(function (y, i) {
      var color = data.colors[i];
      series.push({ label: data.labels[i], stroke: color, width: 1.5, spanGaps: true,
                    points: { show: false }, value: function (u, v) { return fmtValue(v); } });
    });
    return draw(el, [data.x].concat(data.ys), {
      width: el.clientWidth, height: 220,
      scales: { x: { time: false } },
      axes: [{ label: "step" }, { label: data.key, size: 70, values: function (u, vals) { return vals.map(fmtValue); } }],
      series: series,
    });
  }

  function scores(el, data) {
    var series = [{ label: "latency (ms)", value: function (u, v) { return v == null ? "—" : v.toFixed(1); } }];
    data.names.forEach(function (name, i) {
      var color = data.colors[i];
      series.push({ label: name, stroke: color, paths: function () { return null; },
                    points: { show: true, size: 5, stroke: color, fill: color },
                    value: function (u, v) { return fmtValue(v); } });
    });
    return draw(el, [data.x].concat(data.ys), {
      width: el.clientWidth, height: 220,
      scales: { x: { time: false } },
      axes: [{ label: "latency (ms)" }, { label: "score", size: 60, values: function (u, vals) { return vals.map(fmtValue); } }],
      series: series,
    });
  }

  var kinds = { metric: metric, scores: scores };
  document.querySelectorAll("[data-chart]").forEach(function (el) {
    var kind = kinds[el.dataset.chart];
    var source = document.getElementById(el.dataset.source);
    if (kind && source) kind(el, JSON.parse(source.textContent));
  });
})();
