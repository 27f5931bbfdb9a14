"""Pure builders for the training lab's views: metric curves, decision surface, signal fit,
image reconstruction, predicted classes of sample images, attention maps. (The residual
spectrum over training is :func:`widgets.figures.spectra.residual_history_figure`.)

The ``*_map``/``*_points`` helpers lay a snapshot out as arrays for the canvas heatmaps; the
``*_figure`` builders make the same view as a plotly Figure for export and scripts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from operator import itemgetter
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from widgets.figures.attention import escape_tokens, token_axis
from widgets.theme import COLORWAY, SEQUENTIAL, apply_theme, log_ticks

__all__ = [
    "TRACE_NAMES",
    "Curves",
    "attention_figure",
    "attention_maps",
    "curve",
    "decision_surface_figure",
    "image_figure",
    "image_maps",
    "metrics_figure",
    "sample_predictions_figure",
    "signal_figure",
    "surface_colors",
    "surface_map",
    "surface_points",
    "surface_style",
]

LOSS_KEYS = ("loss", "train_loss", "test_loss")
ACC_KEYS = ("train_acc", "test_acc")
TRACE_NAMES = {"loss": "batch loss", "train_loss": "train loss", "test_loss": "test loss",
          "train_acc": "train acc", "test_acc": "test acc"}  # fmt: skip


def curve(
    history: Sequence[Mapping[str, float]], key: str, max_points: int = 400
) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of ``key`` over ``history``, evenly thinned to at most ``max_points``
    (the last point always kept)."""
    curves = Curves((key,))
    curves.update(history)
    return curves.get(key, max_points)


class Curves:
    """(steps, values) of some metrics over a history that grows at its end, for live plots.

    :meth:`update` reads only the rows added since the last call (a refresh at step 30 000 costs
    what one at step 300 does); a history that was cut back or replaced (a rollback, a reset,
    another run) is read anew. :meth:`get` returns a curve as :func:`curve` does.
    """

    def __init__(self, keys: Sequence[str]) -> None:
        self.keys = tuple(keys)
        self._points: dict[str, tuple[list[float], list[float]]] = {}
        self._seen = 0
        self._last: Mapping[str, float] | None = None

    def update(self, history: Sequence[Mapping[str, float]]) -> None:
        """Take in the rows of ``history`` not seen yet."""
        start = self._seen
        if start > len(history) or (start and history[start - 1] is not self._last):
            start = 0  # not the history read so far, grown: read it from its first row
        if start == 0:
            self._points = {k: ([], []) for k in self.keys}
        for row in history[start:]:
            for key in self.keys:
                if key in row:
                    xs, ys = self._points[key]
                    xs.append(row["step"])
                    ys.append(row[key])
        self._seen = len(history)
        self._last = history[-1] if history else None

    def get(self, key: str, max_points: int = 400) -> tuple[np.ndarray, np.ndarray]:
        """(steps, values) of ``key`` (float64), evenly thinned to at most ``max_points`` (≥ 2)."""
        xs, ys = self._points.get(key, ([], []))
        n, m = len(xs), max(2, max_points)
        if n > m:  # rows ⌊i (n−1) / (m−1)⌋, i < m: first and last kept, increasing
            pick = itemgetter(*(np.arange(m) * (n - 1) // (m - 1)).tolist())
            return np.asarray(pick(xs), dtype=np.float64), np.asarray(pick(ys), dtype=np.float64)
        return np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)


def metrics_figure(
    history: Sequence[Mapping[str, float]],
    *,
    step: int | None = None,
    accuracy: bool | None = None,
    max_points: int = 400,
) -> go.Figure:
    """Loss (log scale, left; one tick per decade written 10⁻³) and accuracy (right; ``None``:
    when the history has it) against step; a dotted line marks ``step`` (the snapshot on view).
    The legend sits above the plot, never over the curves."""
    has_acc = accuracy if accuracy is not None else any("test_acc" in h for h in history)
    fig = make_subplots(specs=[[{"secondary_y": has_acc}]])
    losses = []
    for i, key in enumerate(LOSS_KEYS):
        x, y = curve(history, key, max_points)
        losses.append(y)
        fig.add_trace(
            go.Scatter(x=x, y=y, name=TRACE_NAMES[key], mode="lines", opacity=0.6 if key == "loss" else 1,
                       line=dict(color=COLORWAY[i], width=1 if key == "loss" else 2)),
            secondary_y=False,
        )  # fmt: skip
    if has_acc:
        for i, key in enumerate(ACC_KEYS):
            x, y = curve(history, key, max_points)
            fig.add_trace(
                go.Scatter(x=x, y=y, name=TRACE_NAMES[key], mode="lines",
                           line=dict(color=COLORWAY[i + 1], dash="dot", width=2)),
                secondary_y=True,
            )  # fmt: skip
        fig.update_yaxes(
            title_text="accuracy",
            range=[0, 1.02],
            tickvals=[0, 0.25, 0.5, 0.75, 1],
            secondary_y=True,
            showgrid=False,
        )
    fig.update_yaxes(
        title_text="loss", type="log", secondary_y=False, **log_ticks(np.concatenate(losses))
    )
    fig.update_xaxes(title_text="step")
    fig.update_layout(width=560, height=340)
    if step is not None:
        fig.add_vline(x=step, line=dict(color="#888", dash="dot", width=1))
    return apply_theme(fig)


def surface_map(predictions: Any, shape: tuple[int, ...]) -> tuple[np.ndarray, float, float]:
    """Class probabilities (res², C) on the probe grid → (res, res) map drawn top-down (row 0
    = largest x₂) and its colour range: P(class 1) for two classes, the predicted class
    otherwise."""
    p = np.asarray(predictions, dtype=np.float32)
    n_classes = p.shape[-1]
    if n_classes == 2:
        z, hi = p[:, 1].reshape(shape), 1.0
    else:
        z, hi = p.argmax(-1).reshape(shape).astype(np.float32), float(n_classes - 1)
    return np.ascontiguousarray(z[::-1]), 0.0, hi


def surface_points(x: Any, y: Any, shape: tuple[int, ...], extent: Sequence[float]) -> np.ndarray:
    """Data points in the cell coordinates of :func:`surface_map`: (n, 3) = (row, col, class)."""
    x = np.asarray(x, dtype=np.float64)
    x0, x1, y0, y1 = extent
    rows, cols = shape
    col = (x[:, 0] - x0) / (x1 - x0) * (cols - 1)
    row = (y1 - x[:, 1]) / (y1 - y0) * (rows - 1)
    return np.stack([row, col, np.asarray(y, dtype=np.float64)], 1).astype(np.float32)


def _tint(color: str, amount: float = 0.62) -> str:
    """``color`` (#rrggbb) blended ``amount`` of the way to white."""
    rgb = [int(color[i : i + 2], 16) for i in (1, 3, 5)]
    return "#" + "".join(f"{round(c + (255 - c) * amount):02x}" for c in rgb)


def surface_colors(n_classes: int) -> list[str]:
    """Colour stops of the decision surface: light tints of the class colours, so the data
    points on top (full class colours, dark outline) stay visible on their own class's region.
    Two classes: P(class 1) from the class-0 tint through white to the class-1 tint; more:
    one tint per predicted class."""
    if n_classes == 2:
        return [_tint(COLORWAY[0]), "#ffffff", _tint(COLORWAY[1])]
    return [_tint(COLORWAY[k % len(COLORWAY)]) for k in range(n_classes)]


def surface_style(n_classes: int, extent: Sequence[float]) -> dict[str, Any]:
    """Keyword arguments for :meth:`widgets.canvas.HeatmapGrid.show` that draw the decision
    surface as :func:`decision_surface_figure` does: tints, colour bar, axes, class legend."""
    return dict(
        vmin=0.0, vmax=1.0 if n_classes == 2 else float(n_classes - 1),
        colors=surface_colors(n_classes), extent=[float(e) for e in extent],
        colorbar_title="P(class 1)" if n_classes == 2 else "predicted class",
        x_title="x₁", y_title="x₂", aspect="equal",
        point_colors=[COLORWAY[k % len(COLORWAY)] for k in range(n_classes)],
        point_labels=[f"class {k}" for k in range(n_classes)],
    )  # fmt: skip


def decision_surface_figure(
    predictions: Any,
    shape: tuple[int, ...],
    extent: Sequence[float],
    x: Any,
    y: Any,
    *,
    title: str = "",
) -> go.Figure:
    """The decision surface (light tints: P(class 1), or the predicted class) with the data
    points on top in full class colours, one legend entry per class; row 0 at the bottom."""
    z, lo, hi = surface_map(predictions, shape)
    z = z[::-1]  # plotly draws row 0 at the bottom
    n_classes = np.asarray(predictions).shape[-1]
    style = surface_style(n_classes, extent)
    x0, x1, y0, y1 = extent
    xs, ys = np.linspace(x0, x1, shape[1]), np.linspace(y0, y1, shape[0])
    stops = style["colors"]
    if n_classes == 2:
        scale = [[i / (len(stops) - 1), c] for i, c in enumerate(stops)]
        bar = dict(title=dict(text=style["colorbar_title"]), tickvals=[0, 0.5, 1])
        zmin, zmax = lo, hi
    else:  # one flat band per class
        scale = [[(k + e) / n_classes, c] for k, c in enumerate(stops) for e in (0, 1)]
        bar = dict(title=dict(text=style["colorbar_title"]), tickvals=list(range(n_classes)))
        zmin, zmax = -0.5, n_classes - 0.5
    fig = go.Figure(
        go.Heatmap(x=xs, y=ys, z=z, zmin=zmin, zmax=zmax, colorscale=scale, colorbar=bar,
                   hovertemplate="x₁ %{x:.2f}, x₂ %{y:.2f}: %{z:.2f}<extra></extra>")
    )  # fmt: skip
    pts, labels = np.asarray(x), np.asarray(y)
    for k in range(n_classes):
        sel = labels == k
        fig.add_trace(
            go.Scatter(x=pts[sel, 0], y=pts[sel, 1], mode="markers", name=style["point_labels"][k],
                       marker=dict(color=style["point_colors"][k], size=6,
                                   line=dict(color="#222", width=0.8)))
        )  # fmt: skip
    fig.update_layout(title=title, width=460, height=420, xaxis_title="x₁", yaxis_title="x₂")
    fig.update_xaxes(range=[x0, x1], constrain="domain")
    fig.update_yaxes(range=[y0, y1], scaleanchor="x", constrain="domain")
    return apply_theme(fig)


def signal_figure(coords: Any, target: Any, prediction: Any, *, title: str = "") -> go.Figure:
    """1-D fit: target and prediction against the coordinate."""
    c = np.asarray(coords, dtype=np.float64).reshape(-1)
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=c, y=np.asarray(target).reshape(-1), name="target", mode="lines",
                             line=dict(color="#999", width=3)))  # fmt: skip
    fig.add_trace(go.Scatter(x=c, y=np.asarray(prediction).reshape(-1), name="model", mode="lines",
                             line=dict(color=COLORWAY[1], width=2)))  # fmt: skip
    fig.update_layout(title=title, height=300, xaxis_title="x", yaxis_title="y")
    return apply_theme(fig)


def image_maps(prediction: Any, target: Any, shape: tuple[int, ...]) -> np.ndarray:
    """(2, h, w) maps: reconstruction and target (channel mean for colour images)."""
    pred = np.asarray(prediction, dtype=np.float32).reshape(*shape, -1).mean(-1)
    tgt = np.asarray(target, dtype=np.float32).reshape(*shape, -1).mean(-1)
    return np.stack([pred, tgt])


def image_figure(
    prediction: Any, target: Any, shape: tuple[int, ...], *, title: str = ""
) -> go.Figure:
    """Reconstruction next to the target, on one grey scale with a colour bar."""
    maps = image_maps(prediction, target, shape)
    fig = make_subplots(rows=1, cols=2, subplot_titles=("model", "target"), horizontal_spacing=0.06)
    for i in range(2):
        fig.add_trace(go.Heatmap(z=maps[i], coloraxis="coloraxis"), 1, i + 1)
        fig.update_yaxes(
            autorange="reversed", scaleanchor=f"x{i + 1 if i else ''}", constrain="domain",
            title_text="pixel row" if i == 0 else None, row=1, col=i + 1,
        )  # fmt: skip
        fig.update_xaxes(title_text="pixel column", constrain="domain", row=1, col=i + 1)
    fig.update_layout(
        title=title, height=340, width=660,
        coloraxis=dict(colorscale="Greys_r", cmin=0, cmax=1, colorbar=dict(title=dict(text="intensity"))),
    )  # fmt: skip
    return apply_theme(fig)


def attention_maps(patterns: Mapping[str, Any], example: int = 0) -> tuple[np.ndarray, list[str]]:
    """Hook name → (B, H, T, T) patterns → (layers·heads, T, T) maps of one example, titles
    ``L0 H1``."""
    maps, titles = [], []
    for layer, (_, pat) in enumerate(sorted(patterns.items(), key=lambda kv: _layer_of(kv[0]))):
        a = np.asarray(pat, dtype=np.float32)[example]
        for h in range(a.shape[0]):
            maps.append(a[h])
            titles.append(f"L{layer} H{h}")
    if not maps:
        return np.zeros((0, 1, 1), np.float32), []
    return np.stack(maps), titles


def _layer_of(name: str) -> int:
    parts = name.split(".")
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0


def attention_figure(
    patterns: Mapping[str, Any], tokens: Sequence[str] | None = None, *, example: int = 0
) -> go.Figure:
    """Every head's attention (query rows, key columns) for one example, layers as rows, on one
    colour scale. Tokens label numeric axes, so repeated tokens keep their own rows/columns."""
    maps, titles = attention_maps(patterns, example)
    n_layers = max(len(patterns), 1)
    n_heads = max(len(maps) // n_layers, 1)
    fig = make_subplots(rows=n_layers, cols=n_heads, subplot_titles=titles,
                        horizontal_spacing=0.04, vertical_spacing=0.12)  # fmt: skip
    t = maps.shape[-1]
    labels = escape_tokens(tokens) if tokens is not None else [str(i) for i in range(t)]
    for i, m in enumerate(maps):
        fig.add_trace(
            go.Heatmap(z=m, x=np.arange(t), y=np.arange(t), coloraxis="coloraxis", customdata=np.broadcast_to(np.asarray(labels, dtype=object), m.shape),
                       hovertemplate="query %{y} → key %{x} %{customdata}: %{z:.3f}<extra></extra>"),
            i // n_heads + 1, i % n_heads + 1,
        )  # fmt: skip
    fig.update_xaxes(**token_axis(labels), tickangle=-60, showticklabels=False)
    fig.update_yaxes(**token_axis(labels), autorange="reversed", showticklabels=False)
    fig.update_xaxes(title_text="key", showticklabels=True, row=n_layers)  # outer axes only
    fig.update_yaxes(title_text="query", showticklabels=True, col=1)
    fig.update_layout(
        height=230 * n_layers + 90, width=210 * n_heads + 160, title="attention (query → key)",
        coloraxis=dict(colorscale=SEQUENTIAL, cmin=0, cmax=1,
                       colorbar=dict(title=dict(text="attention weight"))),
    )  # fmt: skip
    return apply_theme(fig)


def sample_predictions_figure(
    images: Any,
    predictions: Any,
    labels: Any,
    *,
    classes: Sequence[str] | None = None,
    title: str = "",
    columns: int = 8,
) -> go.Figure:
    """Sample images (n, h, w) with the predicted class over each (class probabilities
    ``predictions`` (n, C)); a wrong prediction is marked ✗ next to the true class."""
    imgs = np.asarray(images, dtype=np.float32)
    pred = np.asarray(predictions).argmax(1)
    truth = np.asarray(labels).astype(int)
    name = (lambda i: str(classes[i])) if classes else str
    n = len(imgs)
    rows = max(1, -(-n // columns))
    titles = [f"{name(p)}" if p == t else f"{name(p)} ✗ ({name(t)})" for p, t in zip(pred, truth)]
    fig = make_subplots(rows=rows, cols=columns, subplot_titles=titles,
                        horizontal_spacing=0.01, vertical_spacing=0.22)  # fmt: skip
    for i, img in enumerate(imgs):
        fig.add_trace(
            go.Heatmap(z=img, coloraxis="coloraxis", hoverinfo="skip"), i // columns + 1, i % columns + 1
        )  # fmt: skip
    fig.update_xaxes(visible=False, constrain="domain")
    fig.update_yaxes(visible=False, autorange="reversed", constrain="domain", constraintoward="top")
    for i in range(n):  # square pixels, each tile right under its title
        fig.update_yaxes(
            scaleanchor=f"x{i + 1 if i else ''}", row=i // columns + 1, col=i % columns + 1
        )
    fig.update_layout(
        title=title or "predicted class of test images", height=120 * rows + 80,
        width=100 * columns + 90,
        coloraxis=dict(colorscale="Greys_r", cmin=float(imgs.min()), cmax=float(imgs.max()),
                       colorbar=dict(title="pixel value")),
    )  # fmt: skip
    return apply_theme(fig)
