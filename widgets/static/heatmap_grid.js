// Grid of heatmaps drawn on <canvas> from one float32 buffer (m, rows, cols), with a shared
// colour bar, axis titles, tick labels, optional cell values, a marked cell and a point overlay.
// Text (titles, labels, hover) is set with textContent / fillText: never parsed as HTML.
const STOPS = {
  viridis: ["#440154", "#482878", "#3e4989", "#31688e", "#26828e", "#1f9e89", "#35b779", "#6ece58", "#b5de2b", "#fde725"],
  magma: ["#000004", "#180f3d", "#440f76", "#721f81", "#9e2f7f", "#cd4071", "#f1605d", "#fd9668", "#feca8d", "#fcfdbf"],
  rdbu: ["#053061", "#2166ac", "#4393c3", "#92c5de", "#d1e5f0", "#f7f7f7", "#fddbc7", "#f4a582", "#d6604d", "#b2182b", "#67001f"],
  greys: ["#ffffff", "#000000"],
  gray: ["#000000", "#ffffff"],
};
const FONT = "11px sans-serif";
const TICK_PX = 11;

const rgb = (h) => [1, 3, 5].map((i) => parseInt(h.slice(i, i + 2), 16));

function lut(model) {
  const custom = model.get("colors");
  const stops = (custom.length >= 2 ? custom : STOPS[model.get("colorscale")] || STOPS.viridis).map(rgb);
  const out = new Uint8ClampedArray(256 * 3);
  for (let i = 0; i < 256; i++) {
    const t = (i / 255) * (stops.length - 1), k = Math.min(Math.floor(t), stops.length - 2), f = t - k;
    for (let c = 0; c < 3; c++) out[i * 3 + c] = stops[k][c] * (1 - f) + stops[k + 1][c] * f;
  }
  return out;
}

function floats(v) {
  if (!v || !(v.byteLength || v.length)) return new Float32Array(0);
  const buf = v.buffer instanceof ArrayBuffer ? v.buffer : v;
  return new Float32Array(buf, v.byteOffset || 0, (v.byteLength || buf.byteLength) / 4);
}

// about `n` round tick values covering [lo, hi]: steps of 1, 2 or 5 × 10^k (no 2.5, so an axis of
// training steps or token positions never shows 2.5 / 7.5)
function niceTicks(lo, hi, n) {
  const span = hi - lo;
  if (!(span > 0)) return [lo];
  const raw = span / n, mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => span / s <= n) || 10 * mag;
  const out = [];
  for (let v = Math.ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step) out.push(Math.abs(v) < step * 1e-9 ? 0 : v);
  return out;
}

const fmt = (v) => (Math.abs(v) >= 1e4 || (Math.abs(v) < 1e-3 && v !== 0) ? v.toExponential(1) : String(+v.toPrecision(4)));

// label indices to draw so that labels `px` apart do not overlap
function thin(n, lengthPx, px) {
  const every = Math.max(1, Math.ceil((n * px) / Math.max(lengthPx, 1)));
  const out = [];
  for (let i = 0; i < n; i += every) out.push(i);
  return out;
}

function textWidth(ctx, strings) {
  ctx.font = FONT;
  return Math.max(0, ...strings.map((s) => ctx.measureText(s).width));
}

// ``s`` shortened with an ellipsis to at most ``px`` wide (rotated labels have a capped margin).
function fit(ctx, s, px) {
  if (ctx.measureText(s).width <= px) return s;
  let n = s.length;
  while (n > 1 && ctx.measureText(s.slice(0, n) + "…").width > px) n -= 1;
  return s.slice(0, n) + "…";
}

// Axis tick labels of one tile: [[position 0..1 along the axis, text], …] for rows and columns.
function axisTicks(model, rows, cols, w, h) {
  const ext = model.get("extent");
  if (ext.length === 4) {
    const [x0, x1, y0, y1] = ext;
    const xs = niceTicks(Math.min(x0, x1), Math.max(x0, x1), Math.max(2, Math.floor(w / 60)));
    const ys = niceTicks(Math.min(y0, y1), Math.max(y0, y1), Math.max(2, Math.floor(h / 40)));
    return {
      x: xs.map((v) => [(v - x0) / (x1 - x0), fmt(v)]),
      y: ys.map((v) => [(y1 - v) / (y1 - y0), fmt(v)]), // row 0 at the top = y1
    };
  }
  if (!model.get("show_labels")) return { x: [], y: [] };
  const rlab = model.get("row_labels"), clab = model.get("col_labels");
  const y = rlab.length === rows ? thin(rows, h, TICK_PX + 2).map((r) => [(r + 0.5) / rows, rlab[r]]) : [];
  const x = clab.length === cols ? thin(cols, w, TICK_PX + 2).map((c) => [(c + 0.5) / cols, clab[c]]) : [];
  return { x, y };
}

function drawPoints(model, ctx, ox, oy, sx, sy, colors, vmin, span) {
  const pts = floats(model.get("points"));
  if (!pts.length) return;
  const named = model.get("point_colors").map(rgb);
  const r = model.get("point_px");
  ctx.lineWidth = 1;
  ctx.strokeStyle = "#222";
  for (let p = 0; p + 2 < pts.length; p += 3) {
    const v = pts[p + 2];
    let c = named[Math.round(v)];
    if (!c) {
      const k = Math.max(0, Math.min(255, Math.round(((v - vmin) / span) * 255)));
      c = [colors[k * 3], colors[k * 3 + 1], colors[k * 3 + 2]];
    }
    ctx.fillStyle = `rgb(${c[0]},${c[1]},${c[2]})`;
    ctx.beginPath();
    ctx.arc(ox + (pts[p + 1] + 0.5) * sx, oy + (pts[p] + 0.5) * sy, r, 0, 2 * Math.PI);
    ctx.fill();
    ctx.stroke();
  }
}

function colorbar(model, colors, height) {
  const vmin = model.get("vmin"), vmax = model.get("vmax");
  const bar = document.createElement("div");
  bar.className = "xp-colorbar";
  bar.dataset.title = model.get("colorbar_title");
  const barH = Math.max(60, Math.min(height, 260)), barW = 12;
  const ticks = niceTicks(vmin, vmax, Math.max(2, Math.floor(barH / 40)));
  const canvas = document.createElement("canvas");
  const ctx = canvas.getContext("2d");
  const labelW = Math.ceil(textWidth(ctx, ticks.map(fmt))) + 6;
  canvas.width = barW + 4 + labelW;
  canvas.height = barH + 12;
  const top = 6;
  for (let y = 0; y < barH; y++) {
    const k = Math.round((1 - y / (barH - 1)) * 255);
    ctx.fillStyle = `rgb(${colors[k * 3]},${colors[k * 3 + 1]},${colors[k * 3 + 2]})`;
    ctx.fillRect(0, top + y, barW, 1);
  }
  ctx.strokeStyle = "#444";
  ctx.strokeRect(0.5, top + 0.5, barW - 1, barH - 1);
  ctx.fillStyle = "#222";
  ctx.font = FONT;
  ctx.textBaseline = "middle";
  ctx.textAlign = "left";
  const span = vmax - vmin || 1;
  ticks.forEach((v) => {
    const y = top + (1 - (v - vmin) / span) * (barH - 1);
    ctx.fillRect(barW, Math.round(y), 3, 1);
    ctx.fillText(fmt(v), barW + 5, y);
  });
  const title = document.createElement("div");
  title.className = "xp-colorbar-title";
  title.textContent = model.get("colorbar_title");
  bar.append(canvas, title);
  return bar;
}

function legend(model, colors) {
  const labels = model.get("point_labels");
  const box = document.createElement("div");
  box.className = "xp-grid-legend";
  if (!labels.length) return box;
  const named = model.get("point_colors");
  const vmin = model.get("vmin"), span = model.get("vmax") - vmin || 1;
  labels.forEach((text, i) => {
    const item = document.createElement("span");
    item.className = "xp-legend-item";
    const swatch = document.createElement("span");
    swatch.className = "xp-legend-swatch";
    const k = Math.max(0, Math.min(255, Math.round(((i - vmin) / span) * 255)));
    swatch.style.background = named[i] || `rgb(${colors[k * 3]},${colors[k * 3 + 1]},${colors[k * 3 + 2]})`;
    const label = document.createElement("span");
    label.textContent = text;
    item.append(swatch, label);
    box.appendChild(item);
  });
  return box;
}

function draw(model, el) {
  const [m, rows, cols] = model.get("shape");
  const data = floats(model.get("values"));
  const vmin = model.get("vmin"), vmax = model.get("vmax"), span = vmax - vmin || 1;
  const colors = lut(model);
  const fade = Math.max(0, Math.min(1, model.get("fade")));
  const titles = model.get("titles"), rlab = model.get("row_labels"), clab = model.get("col_labels");
  const tile = model.get("tile_px"), selected = model.get("selected");
  const equal = model.get("aspect") === "equal";
  const scale = tile / Math.max(rows, cols, 1);
  const w = equal ? Math.max(1, Math.round(cols * scale)) : tile;
  const h = equal ? Math.max(1, Math.round(rows * scale)) : model.get("tile_height") || tile;
  const probe = document.createElement("canvas").getContext("2d");
  const ticks = axisTicks(model, rows, cols, w, h);
  const left = ticks.y.length ? Math.ceil(textWidth(probe, ticks.y.map((t) => t[1]))) + 8 : 0;
  const xLong = textWidth(probe, ticks.x.map((t) => t[1]));
  const rotate = ticks.x.length > 1 && xLong + 4 > (w / ticks.x.length);
  const bottom = ticks.x.length ? (rotate ? Math.min(90, Math.ceil(xLong)) : TICK_PX) + 8 : 0;
  const top = ticks.y.length ? Math.ceil(TICK_PX / 2) + 1 : 0; // room for the first row label
  const mark = model.get("mark_cell") ? model.get("clicked_cell") : [];
  const showValues = model.get("show_values") && w / cols >= 26 && h / rows >= 14;

  el.replaceChildren();
  const root = document.createElement("div");
  root.className = "xp-grid-root";
  const caption = document.createElement("div");
  caption.className = "xp-grid-caption";
  caption.textContent = model.get("caption");
  const ytitle = document.createElement("div");
  ytitle.className = "xp-axis-title xp-axis-y";
  ytitle.textContent = model.get("y_title");
  const xtitle = document.createElement("div");
  xtitle.className = "xp-axis-title xp-axis-x";
  xtitle.textContent = model.get("x_title");
  const grid = document.createElement("div");
  grid.className = "xp-grid";
  const ncol = model.get("columns") || Math.ceil(Math.sqrt(m || 1));
  grid.style.gridTemplateColumns = `repeat(${ncol}, max-content)`;
  const tip = document.createElement("div");
  tip.className = "xp-grid-tip";
  for (let i = 0; i < m; i++) {
    const cell = document.createElement("div");
    cell.className = "xp-grid-cell" + (i === selected ? " xp-selected" : "");
    cell.dataset.index = String(i);
    const title = document.createElement("div");
    title.className = "xp-grid-title";
    title.textContent = titles[i] ?? "";
    const canvas = document.createElement("canvas");
    canvas.width = left + w + 1 + (ticks.x.length ? 8 : 0); // room for the last column label
    canvas.height = top + h + bottom + 1;
    const ctx = canvas.getContext("2d");
    const img = ctx.createImageData(cols, rows);
    const base = i * rows * cols;
    for (let p = 0; p < rows * cols; p++) {
      const x = data[base + p];
      const k = Number.isFinite(x) ? Math.max(0, Math.min(255, Math.round(((x - vmin) / span) * 255))) : -1;
      img.data[p * 4 + 3] = 255;
      if (k < 0) { img.data[p * 4] = 255; img.data[p * 4 + 1] = 0; img.data[p * 4 + 2] = 255; continue; }
      for (let c = 0; c < 3; c++) img.data[p * 4 + c] = colors[k * 3 + c] + (255 - colors[k * 3 + c]) * fade;
    }
    const off = new OffscreenCanvas(cols, rows);
    off.getContext("2d").putImageData(img, 0, 0);
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(off, left, top, w, h);
    const sx = w / cols, sy = h / rows;
    if (i === 0) drawPoints(model, ctx, left, top, sx, sy, colors, vmin, span);
    ctx.font = FONT;
    if (showValues) {
      ctx.textAlign = "center";
      ctx.textBaseline = "middle";
      for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) {
        const v = data[base + r * cols + c];
        if (!Number.isFinite(v)) continue;
        const k = Math.max(0, Math.min(255, Math.round(((v - vmin) / span) * 255)));
        const lum = 0.299 * colors[k * 3] + 0.587 * colors[k * 3 + 1] + 0.114 * colors[k * 3 + 2];
        ctx.fillStyle = lum * (1 - fade) + 255 * fade > 140 ? "#111" : "#fff";
        ctx.fillText(v.toFixed(2), left + (c + 0.5) * sx, top + (r + 0.5) * sy);
      }
    }
    if (mark.length === 2 && (i === selected || (selected < 0 && i === 0))) {
      const [r, c] = mark;
      ctx.lineWidth = 2;
      ctx.strokeStyle = "#fff";
      ctx.strokeRect(left + c * sx + 1, top + r * sy + 1, sx - 2, sy - 2);
      ctx.strokeStyle = "#d62728";
      ctx.strokeRect(left + c * sx + 3, top + r * sy + 3, sx - 6, sy - 6);
      cell.dataset.marked = `${r},${c}`;
    }
    ctx.strokeStyle = "#444";
    ctx.lineWidth = 1;
    ctx.strokeRect(left + 0.5, top + 0.5, w, h);
    ctx.fillStyle = "#333";
    ctx.textBaseline = "middle";
    ctx.textAlign = "right";
    ticks.y.forEach(([t, s]) => { ctx.fillRect(left - 3, Math.round(top + t * h), 3, 1); ctx.fillText(s, left - 5, top + t * h); });
    ticks.x.forEach(([t, s]) => {
      const x = left + t * w;
      ctx.fillRect(Math.round(x), top + h, 1, 3);
      if (rotate) {
        ctx.save();
        ctx.translate(x, top + h + 5);
        ctx.rotate(-Math.PI / 2);
        ctx.textAlign = "right";
        ctx.fillText(fit(ctx, s, bottom - 10), 0, 0);
        ctx.restore();
      } else {
        ctx.textAlign = "center";
        ctx.textBaseline = "top";
        ctx.fillText(s, x, top + h + 5);
        ctx.textBaseline = "middle";
      }
    });
    const locate = (ev) => {
      const rect = canvas.getBoundingClientRect();
      const c = Math.floor(((ev.clientX - rect.left) * (canvas.width / rect.width) - left) / sx);
      const r = Math.floor(((ev.clientY - rect.top) * (canvas.height / rect.height) - top) / sy);
      return r >= 0 && r < rows && c >= 0 && c < cols ? [r, c] : null;
    };
    canvas.addEventListener("mousemove", (ev) => {
      const rc = locate(ev);
      if (!rc) { tip.style.display = "none"; return; }
      const [r, c] = rc;
      const row = rlab[r] ?? String(r), col = clab[c] ?? String(c);
      tip.textContent = `${titles[i] ?? ""}  ${row} → ${col}: ${data[base + r * cols + c].toPrecision(4)}`;
      tip.style.display = "block";
    });
    canvas.addEventListener("mouseleave", () => { tip.style.display = "none"; });
    canvas.addEventListener("click", (ev) => {
      const rc = locate(ev);
      model.set("selected", i);
      if (rc) model.set("clicked_cell", rc);
      model.save_changes();
    });
    cell.append(title, canvas);
    grid.appendChild(cell);
  }
  const body = document.createElement("div");
  body.className = "xp-grid-body";
  const side = document.createElement("div");
  side.className = "xp-grid-side";
  if (model.get("show_colorbar")) side.appendChild(colorbar(model, colors, h));
  body.append(ytitle, grid, side, document.createElement("div"), xtitle);
  root.append(caption, body, legend(model, colors), tip);
  el.appendChild(root);
}

function render({ model, el }) {
  const redraw = () => draw(model, el);
  // A new selection only moves the highlight, unless the marked cell follows it.
  const highlight = () => {
    if (model.get("mark_cell")) return redraw();
    el.querySelectorAll(".xp-grid-cell").forEach((c) =>
      c.classList.toggle("xp-selected", Number(c.dataset.index) === model.get("selected")));
  };
  const keys = ["values", "shape", "titles", "row_labels", "col_labels", "vmin", "vmax", "colorscale",
    "colors", "tile_px", "tile_height", "aspect", "columns", "caption", "show_labels", "points",
    "point_px", "point_colors", "point_labels", "x_title", "y_title", "colorbar_title", "show_colorbar",
    "show_values", "fade", "extent", "mark_cell", "clicked_cell"];
  keys.forEach((k) => model.on(`change:${k}`, redraw));
  model.on("change:selected", highlight);
  redraw();
  return () => {
    keys.forEach((k) => model.off(`change:${k}`, redraw));
    model.off("change:selected", highlight);
  };
}

export default { render };
