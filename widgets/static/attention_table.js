// Sortable head-statistics table. Rows arrive as JSON numbers (one per head); cells are set with
// textContent. Click a header to sort (again to reverse), a row to select the head (synced).
function render({ model, el }) {
  const root = document.createElement("div");
  root.className = "xp-table-wrap";
  el.replaceChildren(root);

  function draw() {
    const cols = model.get("columns"), rows = model.get("rows");
    const sortBy = model.get("sort_by"), desc = model.get("descending"), sel = model.get("selected");
    const c = cols.indexOf(sortBy);
    const order = rows.map((_, i) => i);
    if (c >= 0) {
      order.sort((a, b) => {
        const x = rows[a][c], y = rows[b][c];
        const nx = x === null || Number.isNaN(x), ny = y === null || Number.isNaN(y);
        if (nx || ny) return nx - ny;
        return desc ? y - x : x - y;
      });
    }
    const table = document.createElement("table");
    table.className = "xp-table";
    const head = table.createTHead().insertRow();
    cols.forEach((name) => {
      const th = document.createElement("th");
      th.textContent = name + (name === sortBy ? (desc ? " ▼" : " ▲") : "");
      th.title = `sort by ${name}`;
      th.addEventListener("click", () => {
        if (name === model.get("sort_by")) model.set("descending", !model.get("descending"));
        else { model.set("sort_by", name); model.set("descending", true); }
        model.save_changes();
      });
      head.appendChild(th);
    });
    const body = table.createTBody();
    order.forEach((i) => {
      const tr = body.insertRow();
      tr.className = i === sel ? "xp-selected" : "";
      tr.dataset.index = String(i);
      rows[i].forEach((v, k) => {
        const td = tr.insertCell();
        td.textContent = v === null ? "–" : k < 2 ? String(v) : Number(v).toFixed(3);
      });
      tr.addEventListener("click", () => { model.set("selected", i); model.save_changes(); });
    });
    root.replaceChildren(table);
  }
  const keys = ["columns", "rows", "sort_by", "descending", "selected"];
  keys.forEach((k) => model.on(`change:${k}`, draw));
  draw();
  return () => keys.forEach((k) => model.off(`change:${k}`, draw));
}

export default { render };
