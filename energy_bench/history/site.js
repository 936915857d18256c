// energy-bench's published history: draws each page from the JSON element #eb-data with plotly.js.
// Every text from the data goes into the page as a DOM text node (textContent), never as markup; texts inside
// plots (hover, legend) go through plotText, because plotly reads a few tags in its labels.
"use strict";
(function () {
  var COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2"];
  var SYMBOL = { measured: "circle", estimated: "diamond-open" };
  var CONFIG = { displaylogo: false, responsive: true };
  // pixels of a benchmark plot without its legend, and per legend entry (plotly's horizontal legend: one row each
  // once machine names are long)
  var PLOT_HEIGHT = 300, LEGEND_ROW = 20;

  function node(tag, attrs, children) {
    var el = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      if (key === "text") el.textContent = attrs[key];
      else if (key === "className") el.className = attrs[key];
      else el.setAttribute(key, attrs[key]);
    });
    (children || []).forEach(function (child) {
      el.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    });
    return el;
  }

  function plotText(value) {
    return String(value === null || value === undefined ? "" : value)
      .replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
  }

  function num(value) {
    if (value === null || value === undefined) return "";
    return Number(value.toPrecision(4)).toString();
  }

  function percent(value) {
    if (value === null || value === undefined) return "";
    var text = (value * 100).toFixed(1) + " %";
    return value > 0 ? "+" + text : text;
  }

  function short(commit) {
    return commit ? String(commit).slice(0, 10) : "(no commit)";
  }

  function colorOf(list, item) {
    return COLORS[Math.max(0, list.indexOf(item)) % COLORS.length];
  }

  function fade(color) {
    var n = parseInt(color.slice(1), 16);
    return "rgba(" + (n >> 16) + "," + ((n >> 8) & 255) + "," + (n & 255) + ",0.18)";
  }

  function select(id, label, choices, every) {
    var box = node("select", { id: id });
    box.appendChild(node("option", { value: "", text: every }));
    choices.forEach(function (choice) {
      box.appendChild(node("option", { value: choice, text: choice }));
    });
    return { label: node("label", {}, [label + " ", box]), box: box };
  }

  function filters(app, machines, branches, onChange) {
    var machine = select("filter-machine", "machine", machines, "all machines");
    var branch = select("filter-branch", "branch", branches, "all branches");
    app.appendChild(node("div", { className: "filters" }, [machine.label, branch.label]));
    var changed = function () { onChange(machine.box.value, branch.box.value); };
    machine.box.addEventListener("change", changed);
    branch.box.addEventListener("change", changed);
    return changed;
  }

  function done(promises) {
    Promise.all(promises).then(function () { document.body.setAttribute("data-rendered", "true"); });
  }

  // ------------------------------------------------------------------------------------------------ index

  function spark(values) {
    var ns = "http://www.w3.org/2000/svg";
    var svg = document.createElementNS(ns, "svg");
    svg.setAttribute("class", "spark");
    svg.setAttribute("width", "120");
    svg.setAttribute("height", "24");
    var finite = values.filter(function (v) { return v !== null; });
    if (finite.length < 2) return svg;
    var low = Math.min.apply(null, finite), high = Math.max.apply(null, finite), span = high - low || 1;
    var points = finite.map(function (v, i) {
      return (i * 118 / (finite.length - 1) + 1).toFixed(1) + "," + (22 - (v - low) * 20 / span).toFixed(1);
    });
    var line = document.createElementNS(ns, "polyline");
    line.setAttribute("points", points.join(" "));
    line.setAttribute("fill", "none");
    line.setAttribute("stroke", "#57606a");  // neutral: up is worse for joules, better for accuracy
    line.setAttribute("stroke-width", "1.5");
    svg.appendChild(line);
    return svg;
  }

  function latestText(summary, row) {
    var unit = row.metric === "time" ? " s" : row.metric === "accuracy" ? "" : " J";
    return num(summary.latest) + unit + (summary.source === "estimated" ? " (estimated)" : "");
  }

  function openText(row) {
    if (!row.open.length) return node("td", { text: "none" });
    var last = row.open[row.open.length - 1];
    var text = row.open.length + " open; latest: " + last.metric + " " + last.direction + " " + percent(last.change) +
      " between " + short(last.before_commit) + " and " + short(last.after_commit);
    return node("td", { className: last.direction, text: text });
  }

  function renderIndex(data, app) {
    app.appendChild(node("p", { className: "muted", text: data.runs + " saved runs, " + data.rows.length +
      " benchmark series. Latest value per call (seconds where a benchmark has no joules); trend: the latest run " +
      "against the median of the runs before it." }));
    var table = node("table", { id: "benchmarks" });
    var head = ["benchmark", "machine", "metric", "latest", "trend", "runs", "open change points"];
    table.appendChild(node("thead", {}, [node("tr", {}, head.map(function (h, i) { return node("th", { text: h, className: i < 3 ? "name" : "" }); }))]));
    var body = node("tbody");
    table.appendChild(body);
    var draw = function (machine, branch) {
      body.textContent = "";
      data.rows.forEach(function (row) {
        var summary = branch ? row.branches[branch] : row.all;
        if ((machine && row.machine !== machine) || !summary) return;
        var link = node("a", { href: row.href, text: row.benchmark });
        var trend = node("td", {}, [spark(summary.spark), " " + (summary.trend === null ? "" : percent(summary.trend))]);
        body.appendChild(node("tr", { "data-benchmark": row.benchmark }, [
          node("td", { className: "name" }, [link]),
          node("td", { className: "name", text: row.machine }),
          node("td", { className: "name", text: row.label }),
          node("td", { text: latestText(summary, row) }),
          trend,
          node("td", { text: String(summary.runs) }),
          openText(row),
        ]));
      });
    };
    filters(app, data.machines, data.branches, draw);
    app.appendChild(table);
    draw("", "");
    done([]);
  }

  // ------------------------------------------------------------------------------------------------ benchmark

  function hover(data, row, value, stddev, meter, grams) {
    var runs = data.runs, m = data.meters[meter] || {}, carbon = runs.carbon[row];
    var lines = [
      "commit " + short(runs.commit[row]) + " (" + runs.branch[row] + ")",
      "date " + (runs.date[row] || "?"),
      "machine " + runs.machine[row],
      "meter " + (m.meter || "?") + ", " + (m.source || "?"),
      "value " + num(value) + (stddev === null ? "" : " ± " + num(stddev)),
    ];
    if (grams !== null && grams !== undefined && carbon) {
      lines.push("CO2e " + num(grams) + " g per call at " + num(carbon.g_per_kwh) + " gCO2e/kWh (" + carbon.source + ")");
    }
    lines.push("run " + runs.label[row]);
    return lines.map(plotText).join("<br>");
  }

  function keep(data, machine, branch, series, i) {
    var row = series.run[i];
    return (!machine || data.runs.machine[row] === machine) && (!branch || data.runs.branch[row] === branch);
  }

  function seriesTraces(data, series, metric, machines, machine, branch) {
    var color = colorOf(machines, series.machine);
    var x = [], y = [], up = [], low = [], bySource = {};
    series.value.forEach(function (value, i) {
      if (!keep(data, machine, branch, series, i)) return;
      var row = series.run[i], sd = series.stddev[i], order = data.runs.order[row];
      x.push(order);
      y.push(value);
      up.push(sd === null ? null : value + sd);
      low.push(sd === null ? null : value - sd);
      var source = (data.meters[series.meter[i]] || {}).source === "measured" ? "measured" : "estimated";
      var group = bySource[source] || (bySource[source] = { x: [], y: [], text: [] });
      group.x.push(order);
      group.y.push(value);
      group.text.push(hover(data, row, value, sd, series.meter[i], series.grams[i]));
    });
    var name = plotText(series.machine), traces = [];
    if (up.some(function (v) { return v !== null; })) {
      traces.push({ x: x, y: up, mode: "lines", line: { width: 0 }, hoverinfo: "skip", showlegend: false,
        legendgroup: name, meta: { kind: "band-top" } });
      traces.push({ x: x, y: low, mode: "lines", line: { width: 0 }, fill: "tonexty", fillcolor: fade(color),
        hoverinfo: "skip", name: name + ": spread (± 1 sd of rounds)", legendgroup: name, meta: { kind: "band" } });
    }
    traces.push({ x: x, y: y, mode: "lines", line: { color: color, width: 1 }, hoverinfo: "skip", showlegend: false,
      legendgroup: name, meta: { kind: "line" } });
    ["measured", "estimated"].forEach(function (source) {
      var g = bySource[source];
      if (!g) return;
      traces.push({ x: g.x, y: g.y, text: g.text, mode: "markers", type: "scatter", hovertemplate: "%{text}<extra></extra>",
        marker: { symbol: SYMBOL[source], size: 7, color: color },
        name: name + (source === "measured" ? ": measured" : ": estimated (not measured)"), legendgroup: name,
        meta: { kind: "points", machine: series.machine, source: source } });
    });
    return traces;
  }

  function changeText(data, c) {
    var lines = [
      (c.accepted ? "accepted " : "") + c.direction + " " + percent(c.change) +
        (c.low === null || c.high === null ? " (interval unbounded)" : " (" + percent(c.low) + " to " + percent(c.high) + ")"),
      "between " + short(c.before_commit) + " and " + short(c.after_commit),
      "mean " + num(c.mean_before) + " → " + num(c.mean_after) + ", p = " + (c.p_value === null ? "?" : c.p_value.toPrecision(2)),
      "machine " + c.machine,
    ];
    return lines.map(plotText).join("<br>");
  }

  function changeTraces(data, metric, machine, branch) {
    var x = [], y = [], text = [], colors = [], shapes = [];
    metric.changes.forEach(function (c) {
      if (machine && c.machine !== machine) return;
      if (branch && data.runs.branch[c.run] !== branch) return;
      var series = metric.series.filter(function (s) { return s.machine === c.machine; })[0];
      var after = data.runs.order[c.run];
      x.push(after);
      y.push(series.value[c.point]);
      text.push(changeText(data, c));
      colors.push(c.accepted ? "#888888" : c.direction === "regression" ? "#cf222e" : "#1a7f37");
      var before = c.before_run === null ? after : data.runs.order[c.before_run];
      shapes.push({ type: "line", xref: "x", yref: "paper", x0: (before + after) / 2, x1: (before + after) / 2, y0: 0,
        y1: 1, line: { color: colors[colors.length - 1], width: 1, dash: "dot" } });
    });
    var trace = { x: x, y: y, text: text, mode: "markers", type: "scatter", hovertemplate: "%{text}<extra></extra>",
      marker: { symbol: "star", size: 15, color: colors, line: { width: 1, color: "#000" } },
      name: "change point", meta: { kind: "changes" } };
    return { traces: x.length ? [trace] : [], shapes: shapes };
  }

  function integerStep(order) {
    // whole run numbers only: 1, 2, 5, 10, 20, 50... apart, about ten ticks
    var span = order.length ? order[order.length - 1] - order[0] : 1, step = 1;
    while (span / step > 12) step *= String(step).charAt(0) === "2" ? 2.5 : 2;
    return step;
  }

  function drawMetric(data, metric, target, machines, machine, branch) {
    var traces = [];
    metric.series.forEach(function (series) {
      if (!machine || series.machine === machine) {
        traces = traces.concat(seriesTraces(data, series, metric, machines, machine, branch));
      }
    });
    var changes = changeTraces(data, metric, machine, branch);
    var all = traces.concat(changes.traces);
    // The legend goes above the plot, where plotly's automargin makes room for it; below, a paper-relative
    // position cannot keep it off the axis title. The figure grows by a row per entry so the plot keeps its size.
    var entries = all.filter(function (t) { return t.showlegend !== false; }).length;
    var layout = {
      height: PLOT_HEIGHT + LEGEND_ROW * entries,
      xaxis: { title: { text: "run, in commit order" }, dtick: integerStep(data.runs.order) },
      yaxis: { title: { text: plotText(metric.label) }, rangemode: metric.metric === "accuracy" ? "normal" : "tozero" },
      shapes: changes.shapes, hovermode: "closest", margin: { t: 10 },
      legend: { orientation: "h", x: 0, y: 1.02, yanchor: "bottom" },
    };
    return Plotly.react(target, all, layout, CONFIG);
  }

  function renderBenchmark(data, app) {
    var machines = [], branches = [];
    data.runs.machine.forEach(function (m) { if (machines.indexOf(m) < 0) machines.push(m); });
    data.runs.branch.forEach(function (b) { if (branches.indexOf(b) < 0) branches.push(b); });
    app.appendChild(node("p", { className: "muted", text: "Each point is one saved run's mean, the band its rounds' " +
      "spread; filled circles are measured joules, open diamonds estimated ones (not measured). Stars mark change " +
      "points: red a regression, green an improvement, grey one accepted." }));
    var targets = data.metrics.map(function (metric) {
      var div = node("div", { className: "plot", id: "plot-" + metric.metric });
      return div;
    });
    var draw = function (machine, branch) {
      return data.metrics.map(function (metric, i) {
        return drawMetric(data, metric, targets[i], machines, machine, branch);
      });
    };
    filters(app, machines.slice().sort(), branches.slice().sort(), function (machine, branch) {
      document.body.removeAttribute("data-rendered");
      done(draw(machine, branch));
    });
    targets.forEach(function (div, i) {
      app.appendChild(node("h3", { text: data.metrics[i].label }));  // the plot's title, as text (never markup)
      app.appendChild(div);
    });
    if (!data.metrics.length) app.appendChild(node("p", { text: "No values saved for this benchmark." }));
    done(draw("", ""));
  }

  // ------------------------------------------------------------------------------------------------ study

  function renderStudy(data, app) {
    var machines = Object.keys(data.latest).sort();
    if (!machines.length) {
      app.appendChild(node("p", { text: "No run in this history ranks variants by joules to a target (the study's " +
        "benchmarks with a baseline variant)." }));
      done([]);
      return;
    }
    app.appendChild(node("p", { className: "muted", text: "Each compressor's joules to reach the " + data.reference +
      "'s accuracy, divided by the " + data.reference + "'s own (1 = the same energy, below 1 = a saving). " +
      "Variants that did not reach the target have no ratio." }));
    var machine = select("filter-machine", "machine", machines, machines[0]);
    machine.box.removeChild(machine.box.firstChild);
    app.appendChild(node("div", { className: "filters" }, [machine.label]));
    var summary = node("div", { className: "summary", id: "study-summary" });
    var latestPlot = node("div", { className: "plot", id: "plot-study-latest" });
    var historyPlots = node("div", { id: "study-history" });
    [summary, latestPlot, historyPlots].forEach(function (el) { app.appendChild(el); });
    var draw = function () {
      var m = machine.box.value, latest = data.latest[m];
      var rows = data.rows.filter(function (r) { return r.machine === m; });
      var runOrder = rows.map(function (r) { return r.run; }).sort(function (a, b) { return a - b; });
      summary.textContent = "";
      summary.appendChild(node("p", { text: "Latest run " + latest.label + " (commit " + short(latest.commit) + ")" +
        (latest.estimated ? ": estimated energy, not measured." : ": measured energy.") }));
      var list = node("ul");
      latest.summary.forEach(function (line) {
        if (line.indexOf("- ") === 0) list.appendChild(node("li", { text: line.slice(2) }));
        else summary.appendChild(node("p", { text: line }));
      });
      summary.appendChild(list);
      var now = rows.filter(function (r) { return r.run === latest.run && r.variant !== data.reference; });
      var variants = [], models = [];
      now.forEach(function (r) {
        if (variants.indexOf(r.variant) < 0) variants.push(r.variant);
        if (models.indexOf(r.model) < 0) models.push(r.model);
      });
      var bars = variants.map(function (v) {
        var mine = now.filter(function (r) { return r.variant === v; });
        return { type: "bar", name: plotText(v), x: mine.map(function (r) { return plotText(r.model); }),
          y: mine.map(function (r) { return r.ratio; }),
          text: mine.map(function (r) { return plotText(r.verdict); }), textposition: "none",
          hovertemplate: "%{x}: %{y:.3f}x, %{text}<extra>" + plotText(v) + "</extra>", meta: { kind: "ratio" } };
      });
      var promises = [Plotly.react(latestPlot, bars, {
        title: { text: "Joules to target, relative to " + plotText(data.reference) + " (latest run)" },
        barmode: "group", yaxis: { title: { text: "ratio" + (latest.estimated ? " (estimated energy)" : "") } },
        shapes: [{ type: "line", xref: "paper", x0: 0, x1: 1, y0: 1, y1: 1, line: { color: "#000", width: 1 } }],
        legend: { orientation: "h", y: -0.3 },
      }, CONFIG)];
      historyPlots.textContent = "";
      models.forEach(function (model, i) {
        var div = node("div", { className: "plot", id: "plot-study-" + i });
        historyPlots.appendChild(div);
        var traces = variants.map(function (v) {
          var mine = rows.filter(function (r) { return r.model === model && r.variant === v; });
          return { mode: "lines+markers", name: plotText(v), x: mine.map(function (r) { return r.run; }),
            y: mine.map(function (r) { return r.ratio; }),
            text: mine.map(function (r) { return plotText(short(r.commit) + " " + (r.date || "") + " " + r.verdict); }),
            hovertemplate: "%{y:.3f}x, %{text}<extra>" + plotText(v) + "</extra>" };
        });
        promises.push(Plotly.react(div, traces, {
          title: { text: plotText(model) + ": ratio over commits" },
          xaxis: { title: { text: "run, in commit order" }, dtick: integerStep(runOrder) },
          yaxis: { title: { text: "joules to target / " + plotText(data.reference) + "'s" } },
        }, CONFIG));
      });
      return promises;
    };
    machine.box.addEventListener("change", function () {
      document.body.removeAttribute("data-rendered");
      done(draw());
    });
    done(draw());
  }

  document.addEventListener("DOMContentLoaded", function () {
    var element = document.getElementById("eb-data");
    var app = document.getElementById("app");
    if (!element || !app) return;
    var data = JSON.parse(element.textContent);
    var kind = document.body.getAttribute("data-page");
    if (kind === "index") renderIndex(data, app);
    else if (kind === "benchmark") renderBenchmark(data, app);
    else if (kind === "study") renderStudy(data, app);
  });
})();
