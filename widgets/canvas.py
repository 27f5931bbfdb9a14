"""Canvas heatmaps fed by binary float32 buffers: the fast path for dense, live maps.

A 200×200 plotly heatmap update costs ~50–120 ms because ``z`` travels as JSON; here the page
receives ``m·rows·cols·4`` bytes and draws them with ``putImageData``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anywidget
import numpy as np
import traitlets

_STATIC = Path(__file__).parent / "static"

__all__ = ["HeatmapGrid"]


class HeatmapGrid(anywidget.AnyWidget):
    """A grid of ``m`` heatmaps of shape (rows, cols) drawn on canvases, with one colour bar.

    Every grid shows a colour bar titled ``colorbar_title`` (what the colour measures) and, when
    set, axis titles ``x_title``/``y_title`` for the whole grid. Tick labels come from
    ``extent`` = [x0, x1, y0, y1] (numeric axes: row 0 at y1, on top) or, with ``show_labels``,
    from ``row_labels``/``col_labels`` (thinned so they never overlap).
    ``aspect="equal"`` keeps square cells in a ``tile_px`` box; ``"auto"`` stretches each map to
    ``tile_px`` × ``tile_height`` (for a few columns of many rows, e.g. frequency × step).
    ``show_values`` writes each value in its cell when cells are large enough; ``mark_cell``
    outlines ``clicked_cell`` on the selected tile (set it to mark a cell from Python).
    ``fade`` (0–1) blends the map towards white so overlaid ``points`` (drawn in
    ``point_colors`` by value, with a ``point_labels`` legend) stand out.
    Click a tile to set ``selected`` (and ``clicked_cell`` = [row, col]); hover shows the value
    with its row/column labels. Use :meth:`show` to replace the maps in one sync.
    """

    _esm = _STATIC / "heatmap_grid.js"
    _css = _STATIC / "heatmap_grid.css"

    values = traitlets.Bytes(b"").tag(sync=True)
    shape = traitlets.List(traitlets.Int(), [0, 0, 0]).tag(sync=True)
    titles = traitlets.List(traitlets.Unicode(), []).tag(sync=True)
    row_labels = traitlets.List(traitlets.Unicode(), []).tag(sync=True)
    col_labels = traitlets.List(traitlets.Unicode(), []).tag(sync=True)
    show_labels = traitlets.Bool(False).tag(sync=True)
    extent = traitlets.List(traitlets.Float(), []).tag(sync=True)
    x_title = traitlets.Unicode("").tag(sync=True)
    y_title = traitlets.Unicode("").tag(sync=True)
    vmin = traitlets.Float(0.0).tag(sync=True)
    vmax = traitlets.Float(1.0).tag(sync=True)
    colorscale = traitlets.Unicode("viridis").tag(sync=True)
    colors = traitlets.List(traitlets.Unicode(), []).tag(sync=True)  # hex stops; over colorscale
    colorbar_title = traitlets.Unicode("value").tag(sync=True)
    show_colorbar = traitlets.Bool(True).tag(sync=True)
    show_values = traitlets.Bool(False).tag(sync=True)
    fade = traitlets.Float(0.0).tag(sync=True)
    tile_px = traitlets.Int(96).tag(sync=True)
    tile_height = traitlets.Int(0).tag(sync=True)
    aspect = traitlets.Enum(["equal", "auto"], "equal").tag(sync=True)
    columns = traitlets.Int(0).tag(sync=True)
    caption = traitlets.Unicode("").tag(sync=True)
    selected = traitlets.Int(-1).tag(sync=True)
    clicked_cell = traitlets.List(traitlets.Int(), []).tag(sync=True)
    mark_cell = traitlets.Bool(False).tag(sync=True)
    # optional scatter overlay on tile 0: float32 (n, 3) rows (row, col, value) in cell units,
    # filled with point_colors[value] (else the map's colour for the value), outlined dark
    points = traitlets.Bytes(b"").tag(sync=True)
    point_px = traitlets.Float(3.0).tag(sync=True)
    point_colors = traitlets.List(traitlets.Unicode(), []).tag(sync=True)
    point_labels = traitlets.List(traitlets.Unicode(), []).tag(sync=True)

    def show(
        self,
        maps: Any,
        titles: list[str] | None = None,
        *,
        vmin: float | None = None,
        vmax: float | None = None,
        **traits: Any,
    ) -> None:
        """Display ``maps`` of shape (m, rows, cols) or (rows, cols); other traits by keyword."""
        arr = np.ascontiguousarray(np.asarray(maps, dtype=np.float32))
        if arr.ndim == 2:
            arr = arr[None]
        if arr.ndim != 3:
            raise ValueError(
                f"maps must have shape (m, rows, cols) or (rows, cols), got {arr.shape}"
            )
        finite = arr[np.isfinite(arr)]
        lo = vmin if vmin is not None else (float(finite.min()) if finite.size else 0.0)
        hi = vmax if vmax is not None else (float(finite.max()) if finite.size else 1.0)
        with self.hold_sync():
            self.shape = list(arr.shape)
            self.values = arr.tobytes()
            self.titles = list(titles) if titles is not None else [""] * arr.shape[0]
            self.vmin, self.vmax = lo, hi if hi > lo else lo + 1.0
            for name, value in traits.items():
                setattr(self, name, value)

    def set_points(self, points: Any) -> None:
        """Overlay points (n, 3) = (row, col, value) in cell coordinates on the first tile."""
        arr = np.ascontiguousarray(np.asarray(points, dtype=np.float32))
        if arr.size and (arr.ndim != 2 or arr.shape[1] != 3):
            raise ValueError(f"points must have shape (n, 3) = (row, col, value), got {arr.shape}")
        self.points = arr.tobytes()

    @property
    def bytes_sent(self) -> int:
        """Size of the float32 payload currently on the page, in bytes."""
        return len(self.values)
