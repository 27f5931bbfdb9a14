// Grid of heatmaps drawn on <canvas> from one float32 buffer (m, rows, cols).
// Text (titles, labels, hover) is set with textContent / fillText: never parsed as HTML.
const STOPS = {
  viridis: ["#440154", "#482878", "#3e4989", "#31688e", "#26828e", "#1f9e89", "#35b779", "#6ece58", "#b5de2b", "#fde725"],
  magma: ["#000004", "#180f3d", "#440f76", "#721f81", "#9e2f7f", "#cd4071", "#f1605d", "#fd9668", "#feca8d", "#fcfdbf"],
  rdbu: ["#053061", "#2166ac", "#4393c3", "#92c5de", "#d1e5f0", "#f7f7f7", "#fddbc7", "#f4a582", "#d6604d", "#b2182b", "#67001f"],
  greys: ["#ffffff", "#000000"],
  gray: ["#000000", "#ffffff"],
};

function lut(name) {
  const stops = (STOPS[name] || STOPS.viridis).map((h) => [1, 3, 5].map((i) => parseInt(h.slice(i, i + 2), 16)));
  const out = new Uint8ClampedArray(256 * 3);
  for (let i = 0; i < 256; i++) {
    const t = (i / 255) * (stops.length - 1), k = Math.min(Math.floor(t), stops.length - 2), f = t - k;
    for (let c = 0; c < 3; c++) out[i * 3 + c] = stops[k][c] * (1 - f) + stops[k + 1][c] * f;
  }
  return out;
}

function floats(model) {
  const v = model.get("values");
  if (!v) return new Float32Array(0);
  const buf = v.buffer instanceof ArrayBuffer ? v.buffer : v;
  return new Float32Array(buf, v.byteOffset || 0, (v.byteLength || buf.byteLength) / 4);
}

function drawPoints(model, ctx, margin, sx, sy, colors, vmin, span) {
  const v = model.get("points");
  if (!v || !(v.byteLength || v.length)) return;
  const buf = v.buffer instanceof ArrayBuffer ? v.buffer : v;
  const pts = new Float32Array(buf, v.byteOffset || 0, (v.byteLength || buf.byteLength) / 4);
  const r = model.get("point_px");
  ctx.lineWidth = 1;
  ctx.strokeStyle = "#fff";
  for (let p = 0; p + 2 < pts.length; p += 3) {
    const k = Math.max(0, Math.min(255, Math.round(((pts[p + 2] - vmin) / span) * 255)));
    ctx.fillStyle = `rgb(${colors[k * 3]},${colors[k * 3 + 1]},${colors[k * 3 + 2]})`;
    ctx.beginPath();
    ctx.arc(margin + (pts[p + 1] + 0.5) * sx, margin + (pts[p] + 0.5) * sy, r, 0, 2 * Math.PI);
    ctx.fill();
    ctx.stroke();
  }
}

function draw(model, el) {
  const [m, rows, cols] = model.get("shape");
  const data = floats(model);
  const vmin = model.get("vmin"), vmax = model.get("vmax"), span = vmax - vmin || 1;
  const colors = lut(model.get("colorscale"));
  const titles = model.get("titles"), rlab = model.get("row_labels"), clab = model.get("col_labels");
  const tile = model.get("tile_px"), selected = model.get("selected");
  const showLabels = model.get("show_labels") && rlab.length === rows && clab.length === cols;
  const margin = showLabels ? Math.min(90, 8 + 6 * Math.max(...rlab.map((s) => s.length), ...clab.map((s) => s.length))) : 0;
  el.replaceChildren();
  const root = document.createElement("div");
  root.className = "xp-grid-root";
  const caption = document.createElement("div");
  caption.className = "xp-grid-caption";
  caption.textContent = model.get("caption");
  root.appendChild(caption);
  const grid = document.createElement("div");
  grid.className = "xp-grid";
  const ncol = model.get("columns") || Math.ceil(Math.sqrt(m || 1));
  grid.style.gridTemplateColumns = `repeat(${ncol}, max-content)`;
  const tip = document.createElement("div");
  tip.className = "xp-grid-tip";
  const scale = tile / Math.max(rows, cols, 1);
  for (let i = 0; i < m; i++) {
    const cell = document.createElement("div");
    cell.className = "xp-grid-cell" + (i === selected ? " xp-selected" : "");
    cell.dataset.index = String(i);
    const title = document.createElement("div");
    title.className = "xp-grid-title";
    title.textContent = titles[i] ?? "";
    const canvas = document.createElement("canvas");
    const w = Math.round(cols * scale), h = Math.round(rows * scale);
    canvas.width = w + margin;
    canvas.height = h + margin;
    const ctx = canvas.getContext("2d");
    const img = ctx.createImageData(cols, rows);
    const base = i * rows * cols;
    for (let p = 0; p < rows * cols; p++) {
      const x = data[base + p];
      const k = Number.isFinite(x) ? Math.max(0, Math.min(255, Math.round(((x - vmin) / span) * 255))) : -1;
      img.data[p * 4 + 3] = 255;
      if (k < 0) { img.data[p * 4] = 255; img.data[p * 4 + 1] = 0; img.data[p * 4 + 2] = 255; continue; }
      img.data[p * 4] = colors[k * 3]; img.data[p * 4 + 1] = colors[k * 3 + 1]; img.data[p * 4 + 2] = colors[k * 3 + 2];
    }
    const off = new OffscreenCanvas(cols, rows);
    off.getContext("2d").putImageData(img, 0, 0);
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(off, margin, margin, w, h);
    if (i === 0) drawPoints(model, ctx, margin, w / cols, h / rows, colors, vmin, span);
    if (showLabels) {
      ctx.fillStyle = "#333";
      ctx.font = `${Math.max(7, Math.min(12, scale * 0.9))}px sans-serif`;
      ctx.textAlign = "right";
      ctx.textBaseline = "middle";
      rlab.forEach((s, r) => ctx.fillText(s, margin - 3, margin + (r + 0.5) * (h / rows)));
      ctx.save();
      ctx.rotate(-Math.PI / 2);
      ctx.textAlign = "left";
      clab.forEach((s, c) => ctx.fillText(s, -margin + 3, margin + (c + 0.5) * (w / cols)));
      ctx.restore();
    }
    const locate = (ev) => {
      const rect = canvas.getBoundingClientRect();
      const c = Math.floor(((ev.clientX - rect.left) * (canvas.width / rect.width) - margin) / (w / cols));
      const r = Math.floor(((ev.clientY - rect.top) * (canvas.height / rect.height) - margin) / (h / rows));
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
  root.append(grid, tip);
  el.appendChild(root);
}

function render({ model, el }) {
  const redraw = () => draw(model, el);
  // A new selection only moves the highlight: no need to repaint every tile.
  const highlight = () => el.querySelectorAll(".xp-grid-cell").forEach((c) =>
    c.classList.toggle("xp-selected", Number(c.dataset.index) === model.get("selected")));
  const keys = ["values", "shape", "titles", "row_labels", "col_labels", "vmin", "vmax",
    "colorscale", "tile_px", "columns", "caption", "show_labels", "points", "point_px"];
  keys.forEach((k) => model.on(`change:${k}`, redraw));
  model.on("change:selected", highlight);
  redraw();
  return () => {
    keys.forEach((k) => model.off(`change:${k}`, redraw));
    model.off("change:selected", highlight);
  };
}

export default { render };
