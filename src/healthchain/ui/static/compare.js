/* The compare page's overlaid latency histograms: each run's counts in the same bins,
   drawn as translucent steps so every run stays visible. */
(function () {
  "use strict";

  document.querySelectorAll('[data-chart="latency-overlay"]').forEach(function (el) {
    var data = JSON.parse(document.getElementById(el.dataset.source).textContent);
    var half = data.width / 2;
    var lo = data.x[0] - half, hi = data.x[data.x.length - 1] + half;
    var steps = uPlot.paths.stepped({ align: 0 });
    // Bin edges, not centres, so each count spans its bin; the last edge closes the step.
    var edges = data.x.map(function (c) { return c - half; }).concat([hi]);
    var series = [{ label: "latency (ms)", value: function (u, v) { return v == null ? "—" : v.toFixed(1) + "–" + (v + data.width).toFixed(1); } }];
    var columns = [edges];
    data.counts.forEach(function (counts, i) {
      series.push({ label: data.labels[i], stroke: data.colors[i], width: 2,
                    fill: data.colors[i] + "22", paths: steps, points: { show: false } });
      columns.push(counts.concat([counts[counts.length - 1]]));
    });
    var chart = new uPlot({
      width: el.clientWidth, height: 260,
      scales: { x: { time: false, range: function () { return [lo, hi]; } },
                y: { range: function (u, min, max) { return [0, Math.max(1, max) * 1.1]; } } },
      axes: [{ label: "latency (ms)" }, { label: "requests", size: 60 }],
      series: series,
    }, columns, el);
    el.dataset.drawn = "true";
    el.uplot = chart;  // for the browser tests' label-overlap check
    window.addEventListener("resize", function () {
      chart.setSize({ width: el.clientWidth, height: chart.height });
    });
  });
})();
