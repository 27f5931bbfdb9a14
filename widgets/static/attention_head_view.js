// Head view: token columns (queries left, keys right) joined by lines, one colour per head,
// opacity ∝ attention weight. Data: float32 (H, n, n) for the visible window of tokens.
// Click a left token to pick the query (synced); hover previews it. Text via fillText only.
function floats(model) {
  const v = model.get("weights");
  if (!v) return new Float32Array(0);
  const buf = v.buffer instanceof ArrayBuffer ? v.buffer : v;
  return new Float32Array(buf, v.byteOffset || 0, (v.byteLength || buf.byteLength) / 4);
}

function render({ model, el }) {
  const root = document.createElement("div");
  root.className = "xp-headview";
  const caption = document.createElement("div");
  caption.className = "xp-headview-caption";
  const swatches = document.createElement("div");
  swatches.className = "xp-headview-heads";
  const canvas = document.createElement("canvas");
  canvas.className = "xp-headview-canvas";
  root.append(caption, swatches, canvas);
  el.replaceChildren(root);
  let preview = -1;

  function draw() {
    const [H, n] = model.get("shape");
    const data = floats(model);
    const tokens = model.get("tokens"), offset = model.get("offset"), colors = model.get("colors");
    const visible = new Set(model.get("heads"));
    const q = (preview >= 0 ? preview : model.get("query")) - offset;
    caption.textContent = model.get("caption");
    swatches.replaceChildren();
    for (let h = 0; h < H; h++) {
      const s = document.createElement("span");
      s.className = "xp-headview-swatch" + (visible.has(h) ? "" : " xp-off");
      s.style.background = colors[h % colors.length];
      s.textContent = `H${h}`;
      s.title = `head ${h}: click to show/hide`;
      s.addEventListener("click", () => {
        const now = new Set(model.get("heads"));
        now.has(h) ? now.delete(h) : now.add(h);
        model.set("heads", [...now].sort((a, b) => a - b));
        model.save_changes();
      });
      swatches.appendChild(s);
    }
    const rowH = 16, labelW = 130, gap = 160, width = 2 * labelW + gap;
    const dpr = window.devicePixelRatio || 1;
    canvas.width = width * dpr;
    canvas.height = (n * rowH + 8) * dpr;
    canvas.style.width = `${width}px`;
    canvas.style.height = `${n * rowH + 8}px`;
    const ctx = canvas.getContext("2d");
    ctx.scale(dpr, dpr);
    ctx.font = "12px sans-serif";
    ctx.textBaseline = "middle";
    const y = (i) => 4 + (i + 0.5) * rowH;
    if (q >= 0 && q < n) {
      ctx.fillStyle = "rgba(214,39,40,0.12)";
      ctx.fillRect(0, y(q) - rowH / 2, labelW, rowH);
      for (let h = 0; h < H; h++) {
        if (!visible.has(h)) continue;
        ctx.strokeStyle = colors[h % colors.length];
        ctx.lineWidth = 2;
        const base = (h * n + q) * n;
        for (let k = 0; k < n; k++) {
          const w = data[base + k];
          if (!(w > 0.005)) continue;
          ctx.globalAlpha = Math.min(1, w);
          ctx.beginPath();
          ctx.moveTo(labelW + 4, y(q));
          ctx.lineTo(labelW + gap - 4, y(k));
          ctx.stroke();
        }
      }
      ctx.globalAlpha = 1;
    }
    ctx.fillStyle = "#222";
    const clip = (s) => (s.length > 18 ? s.slice(0, 17) + "…" : s);
    for (let i = 0; i < n; i++) {
      ctx.textAlign = "right";
      ctx.fillStyle = i === q ? "#d62728" : "#222";
      ctx.fillText(clip(tokens[i] ?? ""), labelW - 2, y(i));
      ctx.textAlign = "left";
      ctx.fillStyle = "#222";
      ctx.fillText(clip(tokens[i] ?? ""), labelW + gap + 2, y(i));
    }
  }

  const rowAt = (ev) => {
    const rect = canvas.getBoundingClientRect();
    const x = ev.clientX - rect.left, i = Math.floor((ev.clientY - rect.top - 4) / 16);
    return x < 130 && i >= 0 && i < model.get("shape")[1] ? i : -1;
  };
  canvas.addEventListener("mousemove", (ev) => {
    const i = rowAt(ev);
    const next = i < 0 ? -1 : i + model.get("offset");
    if (next !== preview) { preview = next; draw(); }
  });
  canvas.addEventListener("mouseleave", () => { preview = -1; draw(); });
  canvas.addEventListener("click", (ev) => {
    const i = rowAt(ev);
    if (i < 0) return;
    preview = -1;
    model.set("query", i + model.get("offset"));
    model.save_changes();
  });
  const keys = ["weights", "shape", "tokens", "offset", "query", "heads", "caption", "colors"];
  keys.forEach((k) => model.on(`change:${k}`, draw));
  draw();
  return () => keys.forEach((k) => model.off(`change:${k}`, draw));
}

export default { render };
