// The charts' hover and zoom (see charts.py, which draws them and defines TG_CHART, the geometry).
// Hover: a guide line, a dot on each curve and a tooltip with the exact step and values.
// Drag: zoom into the box (a flat drag zooms the steps and fits the values). Double-click: reset.
// A new view redraws curves, ticks and marker labels with the rules of charts.py (render, ticks,
// label, layout_labels), from the numbers in data-chart, so any zoom depth stays exact.
(function () {
  "use strict";
  var G = TG_CHART, NS = "http://www.w3.org/2000/svg";
  var PW = G.width - G.left - G.right, PH = G.height - G.top - G.bottom;

  function ticks(low, high, log, count) {
    count = count || 5;
    var values = [], index;
    if (log && high - low >= 2.5) {
      var stride = Math.ceil((high - low) / count);
      for (index = Math.ceil(low); index <= Math.floor(high); index++) if (index % stride === 0) values.push(index);
      return {values: values, step: null};
    }
    if (log && high - low >= 0.5) {
      for (index = Math.floor(low); index <= Math.ceil(high); index++) {
        [1, 2, 5].forEach(function (m) { var v = Math.log10(m * Math.pow(10, index)); if (v >= low && v <= high) values.push(v); });
      }
      return {values: values, step: null};
    }
    if (log) {
      var linear = ticks(Math.pow(10, low), Math.pow(10, high), false, count);
      return {values: linear.values.filter(function (v) { return v > 0; }).map(Math.log10), step: linear.step};
    }
    if (!(high > low)) return {values: [low], step: Math.abs(low) || 1};
    var raw = (high - low) / count, magnitude = Math.pow(10, Math.floor(Math.log10(raw)));
    var step = [1, 2, 2.5, 5, 10].map(function (m) { return m * magnitude; }).filter(function (s) { return s >= raw; })[0];
    var start = Math.ceil(low / step), stop = Math.floor(high / step);
    for (index = start; index <= stop; index++) values.push(Math.abs(index * step) < step * 1e-9 ? 0 : index * step);
    return {values: values, step: step};
  }

  function label(value, step) {
    step = step || Math.abs(value);
    if (value === 0) return "0";
    if (Math.abs(value) >= 1e-4 && Math.abs(value) < 1e6) return value.toFixed(Math.max(0, -Math.floor(Math.log10(step))));
    return value.toExponential(Math.max(0, Math.floor(Math.log10(Math.abs(value))) - Math.floor(Math.log10(step))));
  }

  function exact(value) {  // a value in the tooltip: six significant digits, or "nan" / "inf" as written
    if (typeof value !== "number") return String(value);
    if (value !== 0 && (Math.abs(value) >= 1e6 || Math.abs(value) < 1e-4)) return value.toExponential(5).replace(/\.?0+e/, "e");
    return String(parseFloat(value.toPrecision(6)));
  }

  function range(values, log) {
    var low = Math.min.apply(null, values), high = Math.max.apply(null, values);
    if (high === low) {
      var spread = log ? 0.5 : (Math.abs(low) * 0.1 || 1);
      return [low - spread, high + spread];
    }
    var margin = (high - low) * 0.05;
    return [low - margin, high + margin];
  }

  function layoutLabels(markers) {
    var rows = [];
    return markers.map(function (marker) {
      var width = G.char_width * marker.label.length;
      var start = marker.px + 3 + width <= G.width - G.right ? marker.px + 3 : marker.px - 3 - width;
      var row = 0;
      while (row < rows.length && !(start > rows[row] + 4)) row++;
      if (row >= G.label_rows) return null;
      rows[row] = start + width;
      return {start: start, row: row};
    });
  }

  function element(tag, attributes, parent, text) {
    var node = document.createElementNS(NS, tag);
    Object.keys(attributes).forEach(function (key) { node.setAttribute(key, attributes[key]); });
    if (text !== undefined) node.textContent = text;
    if (parent) parent.appendChild(node);
    return node;
  }

  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }

  // Points far outside a zoomed view are pulled in to where the plot (which clips) can still draw them exactly.
  function clamp(pixels) { return Math.max(-1e6, Math.min(1e6, pixels)); }

  function setUp(figure) {
    var data = JSON.parse(figure.getAttribute("data-chart"));
    var svg = figure.querySelector("svg"), plot = svg.querySelector("svg.plot");
    var yTicks = svg.querySelector("g.y-ticks"), xTicks = svg.querySelector("g.x-ticks"), labels = svg.querySelector("g.marker-labels");
    var full = {x0: data.x[0], x1: data.x[1], y0: data.y[0], y1: data.y[1]}, view = full;
    var series = data.series.map(function (s) {
      var points = s.points.map(function (p) {
        var y = p[1], drawable = typeof y === "number" && (!data.log || y > 0);
        return {x: p[0], value: y, y: drawable ? (data.log ? Math.log10(y) : y) : null};
      }).sort(function (a, b) { return a.x - b.x; });
      return {name: s.name, color: s.color, points: points};
    });
    var xOf = function (x) { return G.left + (x - view.x0) / (view.x1 - view.x0) * PW; };
    var yOf = function (y) { return G.top + PH - (y - view.y0) / (view.y1 - view.y0) * PH; };
    var dataX = function (px) { return view.x0 + (px - G.left) / PW * (view.x1 - view.x0); };
    var dataY = function (py) { return view.y0 + (G.top + PH - py) / PH * (view.y1 - view.y0); };
    var overlay = element("g", {"class": "hover"}, svg);
    var tip = document.createElement("div");
    tip.className = "chart-tip";
    tip.hidden = true;
    figure.appendChild(tip);

    function plotX(x) { return clamp((x - view.x0) / (view.x1 - view.x0) * PW); }
    function plotY(y) { return clamp(PH - (y - view.y0) / (view.y1 - view.y0) * PH); }

    function draw() {  // the curves and markers in the view, then the ticks and labels around them
      clear(plot);
      data.markers.forEach(function (m) {
        var line = element("line", {x1: plotX(m.x), x2: plotX(m.x), y1: 0, y2: PH, "class": "marker", style: "stroke:" + m.color}, plot);
        element("title", {}, line, m.label + " at " + exact(m.x));
      });
      series.forEach(function (s) {
        var shown = s.points.filter(function (p) { return p.y !== null; });
        if (shown.length === 1) {
          element("circle", {cx: plotX(shown[0].x), cy: plotY(shown[0].y), r: 3, style: "fill:" + s.color}, plot);
        } else if (shown.length) {
          element("polyline", {points: shown.map(function (p) { return plotX(p.x).toFixed(1) + "," + plotY(p.y).toFixed(1); }).join(" "),
                               "class": "line", style: "stroke:" + s.color}, plot);
        }
      });
      clear(yTicks);
      var y = ticks(view.y0, view.y1, data.log);
      y.values.forEach(function (tick) {
        element("line", {x1: G.left, x2: G.width - G.right, y1: yOf(tick), y2: yOf(tick), "class": "grid"}, yTicks);
        element("text", {x: G.left - 6, y: yOf(tick) + 4, "text-anchor": "end", "class": "tick"}, yTicks,
                label(data.log ? Math.pow(10, tick) : tick, y.step));
      });
      clear(xTicks);
      var x = ticks(view.x0, view.x1, false);
      x.values.forEach(function (tick) {
        element("text", {x: xOf(tick), y: G.height - G.bottom + 16, "text-anchor": "middle", "class": "tick"}, xTicks, label(tick, x.step));
      });
      clear(labels);
      var visible = data.markers.filter(function (m) { return m.x >= view.x0 && m.x <= view.x1; })
        .map(function (m) { return {px: xOf(m.x), label: m.label, color: m.color}; });
      layoutLabels(visible).forEach(function (place, index) {
        if (place) element("text", {x: place.start, y: G.top + 11 + 11 * place.row, "class": "marker-label",
                                    style: "fill:" + visible[index].color}, labels, visible[index].label);
      });
    }

    function pointer(event) {
      var point = svg.createSVGPoint();
      point.x = event.clientX;
      point.y = event.clientY;
      return point.matrixTransform(svg.getScreenCTM().inverse());
    }

    function inside(p) { return p.x >= G.left && p.x <= G.width - G.right && p.y >= G.top && p.y <= G.top + PH; }

    function nearest(points, x) {
      var best = null;
      points.forEach(function (p) { if (best === null || Math.abs(p.x - x) < Math.abs(best.x - x)) best = p; });
      return best;
    }

    function hide() { tip.hidden = true; clear(overlay); }

    function hover(event) {
      var p = pointer(event);
      if (!inside(p)) return hide();
      var x = dataX(p.x), found = series.map(function (s) { return {series: s, point: nearest(s.points, x)}; })
        .filter(function (f) { return f.point !== null; });
      if (!found.length) return hide();
      var step = nearest(found.map(function (f) { return f.point; }), x).x;
      clear(overlay);
      clear(tip);
      element("line", {x1: xOf(step), x2: xOf(step), y1: G.top, y2: G.top + PH, "class": "guide"}, overlay);
      var head = document.createElement("div");
      head.textContent = data.x_label + " " + exact(step);
      tip.appendChild(head);
      found.forEach(function (f) {
        if (f.point.y !== null && f.point.y >= view.y0 && f.point.y <= view.y1) {
          element("circle", {cx: xOf(f.point.x), cy: yOf(f.point.y), r: 3.5, style: "fill:" + f.series.color}, overlay);
        }
        var line = document.createElement("div"), key = document.createElement("span");
        key.className = "key";
        key.style.background = f.series.color;
        line.appendChild(key);
        line.appendChild(document.createTextNode(f.series.name + ": " + exact(f.point.value) +
          (f.point.x === step ? "" : " (at " + exact(f.point.x) + ")")));
        tip.appendChild(line);
      });
      data.markers.filter(function (m) { return m.x === step; }).forEach(function (m) {
        var line = document.createElement("div");
        line.textContent = "finding " + m.label;
        line.style.color = "#f5b7b1";
        tip.appendChild(line);
      });
      tip.hidden = false;
      var box = figure.getBoundingClientRect(), left = event.clientX - box.left + 14;
      if (left + tip.offsetWidth > box.width) left = event.clientX - box.left - 14 - tip.offsetWidth;
      tip.style.left = Math.max(0, left) + "px";
      tip.style.top = Math.max(0, event.clientY - box.top + 14) + "px";
    }

    var start = null, selection = null;
    svg.addEventListener("mousedown", function (event) {
      var p = pointer(event);
      if (!inside(p) || event.button !== 0) return;
      event.preventDefault();
      start = p;
      selection = element("rect", {x: p.x, y: p.y, width: 0, height: 0, "class": "selection"}, svg);
    });
    svg.addEventListener("mousemove", function (event) {
      hover(event);
      if (!start) return;
      var p = pointer(event);
      var x = Math.min(Math.max(p.x, G.left), G.width - G.right), y = Math.min(Math.max(p.y, G.top), G.top + PH);
      selection.setAttribute("x", Math.min(start.x, x));
      selection.setAttribute("y", Math.min(start.y, y));
      selection.setAttribute("width", Math.abs(x - start.x));
      selection.setAttribute("height", Math.abs(y - start.y));
    });
    window.addEventListener("mouseup", function () {
      if (!start) return;
      var x = +selection.getAttribute("x"), y = +selection.getAttribute("y");
      var width = +selection.getAttribute("width"), height = +selection.getAttribute("height");
      svg.removeChild(selection);
      start = selection = null;
      if (width < 4) return;
      var x0 = dataX(x), x1 = dataX(x + width), y0 = view.y0, y1 = view.y1;
      if (height >= 4) {
        y0 = dataY(y + height);
        y1 = dataY(y);
      } else {  // a flat drag: the steps in the box, the values fitted to what they show
        var shown = [];
        series.forEach(function (s) { s.points.forEach(function (p) { if (p.y !== null && p.x >= x0 && p.x <= x1) shown.push(p.y); }); });
        if (shown.length) {
          var fitted = range(shown, data.log);
          y0 = fitted[0];
          y1 = fitted[1];
        }
      }
      view = {x0: x0, x1: x1, y0: y0, y1: y1};
      hide();
      draw();
    });
    svg.addEventListener("mouseleave", hide);
    svg.addEventListener("dblclick", function () { view = full; draw(); hide(); });
    figure.setAttribute("data-interactive", "true");
  }

  function setUpAll() {
    var figures = document.querySelectorAll("figure.chart[data-chart]"), ready = 0;
    Array.prototype.forEach.call(figures, function (figure) {
      try {
        setUp(figure);
        ready++;
      } catch (error) {  // a chart that cannot be made interactive stays as drawn
        figure.setAttribute("data-chart-error", String(error));
      }
    });
    document.documentElement.setAttribute("data-charts-ready", String(ready));
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", setUpAll);
  else setUpAll();
})();
