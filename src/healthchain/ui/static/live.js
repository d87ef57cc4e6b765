/* A RUNNING experiment's page asks the server for news every few seconds and updates the
   elapsed time, heartbeat, request counts and latest metrics; it stops when the run ends. */
(function () {
  "use strict";

  var card = document.getElementById("experiment");
  if (!card || !card.dataset.live) return;
  var url = card.dataset.live;
  var every = Number(card.dataset.pollMs) || 1000;

  function field(name) { return card.ownerDocument.querySelector('[data-field="' + name + '"]'); }

  function setText(name, text) {
    var el = field(name);
    if (el && text != null && el.textContent !== String(text)) el.textContent = text;
  }

  function updateMetrics(metrics) {
    var table = document.querySelector("table.metrics");
    if (!table) return;
    var body = table.tBodies[0];
    Object.keys(metrics).forEach(function (key) {
      var row = Array.prototype.find.call(body.rows, function (r) { return r.dataset.metric === key; });
      if (!row) {
        row = body.insertRow();
        row.dataset.metric = key;
        var th = document.createElement("th");
        th.textContent = key;  // text, never HTML: keys are user strings
        row.appendChild(th);
        var td = row.insertCell();
        td.className = "num";
      }
      row.cells[row.cells.length - 1].textContent = metrics[key];
    });
    if (Object.keys(metrics).length) {
      table.hidden = false;
      var none = field("no-metrics");
      if (none) none.hidden = true;
    }
  }

  function apply(news) {
    setText("elapsed", news.elapsed);
    setText("heartbeat", news.heartbeat || "—");
    setText("requests", news.requests);
    setText("failures", news.failures);
    setText("p50", news.p50);
    setText("p95", news.p95);
    if (news.requests) setText("no-requests", "Requests are arriving: the latency histogram shows on reload.");
    var stale = field("stale");
    if (stale) stale.hidden = !news.stale;
    updateMetrics(news.metrics);
    if (!news.running) {
      var badge = field("status");
      badge.textContent = news.status;
      badge.className = "status status-" + news.status.toLowerCase();
      setText("ended", news.ended || "—");
      setText("live-note", "The run ended (" + news.status + "); reload for its charts.");
      card.dataset.polling = "stopped";
    }
    return news.running;
  }

  function poll() {
    fetch(url, { headers: { Accept: "application/json" }, cache: "no-store" })
      .then(function (r) { if (!r.ok) throw new Error("HTTP " + r.status); return r.json(); })
      .then(function (news) {
        var polls = Number(card.dataset.polls || 0) + 1;
        card.dataset.polls = String(polls);
        if (apply(news)) setTimeout(poll, every);
      })
      .catch(function () { setTimeout(poll, every * 5); });  // the server restarts: keep asking, slower
  }

  card.dataset.polling = "active";
  setTimeout(poll, every);
})();
