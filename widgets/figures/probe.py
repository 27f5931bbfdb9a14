"""Pure figure builders for interventions: patching maps, attributions, the logit lens, and how
an intervention moved the output.

Inputs are the results of :mod:`explorer.interventions` (tidy frames, :class:`Attribution`,
probability vectors). Token text is HTML-escaped (``<script>`` shows as text); every heatmap has
a colour bar with a title and titled axes.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from widgets.figures.attention import escape_tokens, token_axis, vit_overlay_figure
from widgets.theme import COLORWAY, DIVERGING, SEQUENTIAL, apply_theme

__all__ = [
    "attribution_overlay_figure",
    "attribution_tokens_figure",
    "logit_lens_figure",
    "output_change_figure",
    "patching_figure",
]

_VALUE_LABELS = {"restored": "restored fraction", "value": "patched metric"}


def _symmetric(z: np.ndarray, floor: float = 0.0) -> float:
    finite = np.abs(z[np.isfinite(z)])
    return float(max(floor, finite.max() if finite.size else 0.0)) or 1.0


def patching_figure(
    frame: pd.DataFrame,
    *,
    value: str = "restored",
    tokens: Sequence[Any] | None = None,
    selected: dict[str, int] | None = None,
    title: str = "",
) -> go.Figure:
    """The patching map of a :func:`~explorer.interventions.patching_sweep` frame: layer ×
    position, layer × head, or (layer, head) × position, coloured by ``value`` (``restored``:
    share of the clean − corrupted gap recovered; ``value``: the patched metric).

    ``tokens`` label the positions; ``selected`` (``{"layer": 1, "head": 0}``) rings a cell.
    Every cell carries its site as customdata ``[layer, head, position]`` (−1 when absent) for
    click-through.
    """
    if value not in frame:
        raise ValueError(f"value must be a column of the frame, e.g. 'restored'; got {value!r}")
    has_head, has_pos = "head" in frame, "position" in frame
    if not (has_head or has_pos):
        raise ValueError("the frame has neither a head nor a position column")
    df = frame.assign(
        head=frame["head"] if has_head else -1, position=frame["position"] if has_pos else -1
    )
    if has_head and has_pos:
        df = df.assign(row=[f"L{a} H{b}" for a, b in zip(df.layer, df["head"])])
        rows = list(dict.fromkeys(df.sort_values(["layer", "head"]).row))
        row_title, col, col_title = "layer, head", "position", "position"
    else:
        df = df.assign(row=df.layer)
        rows = sorted(df.layer.unique())
        col = "position" if has_pos else "head"
        row_title, col_title = "layer", "position" if has_pos else "head"
    cols = sorted(df[col].unique())
    grid = df.pivot_table(index="row", columns=col, values=value, aggfunc="first")
    z = grid.reindex(index=rows, columns=cols).to_numpy(dtype=np.float64)
    site = df.set_index(["row", col], drop=False)[["layer", "head", "position"]]
    custom = np.array([[site.loc[(r, c)].tolist() for c in cols] for r in rows])
    bound = _symmetric(z, 1.0 if value == "restored" else 0.0)
    labels = escape_tokens(tokens) if tokens is not None and col == "position" else None
    x_text = [labels[c] if labels else str(c) for c in cols]
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=list(range(len(cols))),
            y=list(range(len(rows))),
            customdata=custom,
            text=[x_text] * len(rows),
            colorscale=DIVERGING,
            zmid=0.0,
            zmin=-bound,
            zmax=bound,
            colorbar=dict(title=dict(text=_VALUE_LABELS.get(value, value), side="right")),
            hovertemplate=(
                f"{row_title} %{{customdata[0]}}"
                + (" head %{customdata[1]}" if has_head else "")
                + (" position %{customdata[2]} (%{text})" if has_pos else "")
                + ": %{z:.3f}<extra></extra>"
            ),
            xgap=1,
            ygap=1,
        )
    )
    if selected is not None:
        hits = [(i, j) for i in range(len(rows)) for j in range(len(cols))
                if all(custom[i, j, k] == selected.get(n, custom[i, j, k])
                       for k, n in enumerate(("layer", "head", "position")))]  # fmt: skip
        for i, j in hits:
            fig.add_shape(type="rect", x0=j - 0.5, x1=j + 0.5, y0=i - 0.5, y1=i + 0.5,
                          line=dict(color="#111", width=2.5))  # fmt: skip
    x_axis = (
        token_axis(x_text)
        if labels
        else dict(tickmode="array", tickvals=list(range(len(cols))), ticktext=x_text)
    )
    metric = str(frame["metric"].iloc[0]) if "metric" in frame and len(frame) else ""
    attrs = frame.attrs
    caption = title or (
        f"activation patching: {metric}"
        + (
            f" (clean {attrs['clean']:.3g}, corrupted {attrs['corrupted']:.3g})"
            if "clean" in attrs
            else ""
        )
    )
    fig.update_layout(
        title=html.escape(caption),
        xaxis=dict(title=col_title, **x_axis, tickangle=-60 if labels else 0, showgrid=False),
        yaxis=dict(title=row_title, tickmode="array", tickvals=list(range(len(rows))),
                   ticktext=[str(r) for r in rows], autorange="reversed", showgrid=False),
        width=int(min(900, max(420, 18 * len(cols) + 220))),
        height=int(min(700, max(280, 26 * len(rows) + 170))),
    )  # fmt: skip
    return apply_theme(fig)


def attribution_tokens_figure(
    tokens: Sequence[Any], values: np.ndarray, *, per_line: int = 12, label: str = "attribution",
    title: str = "",
) -> go.Figure:  # fmt: skip
    """Tokens written in reading order (``per_line`` per line), each cell coloured by its
    attribution on a diverging scale centred at 0."""
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    text = escape_tokens(tokens)
    if len(text) != len(v):
        raise ValueError(f"{len(text)} tokens but {len(v)} attribution values")
    n_lines = max(1, -(-len(v) // per_line))
    z = np.full((n_lines, per_line), np.nan)
    words = np.full((n_lines, per_line), "", dtype=object)
    pos = np.full((n_lines, per_line), -1)
    for i, (t, a) in enumerate(zip(text, v)):
        z[i // per_line, i % per_line] = a
        words[i // per_line, i % per_line] = t
        pos[i // per_line, i % per_line] = i
    bound = _symmetric(z)
    fig = go.Figure(
        go.Heatmap(
            z=z, text=words, customdata=pos, texttemplate="%{text}", textfont=dict(size=12),
            colorscale=DIVERGING, zmid=0.0, zmin=-bound, zmax=bound, xgap=2, ygap=2,
            colorbar=dict(title=dict(text=html.escape(label), side="right")),
            hovertemplate="token %{customdata} %{text}: %{z:.4g}<extra></extra>",
        )
    )  # fmt: skip
    fig.update_layout(
        title=html.escape(title) if title else None,
        xaxis=dict(title="token in line", showgrid=False, zeroline=False, dtick=1),
        yaxis=dict(title="line", autorange="reversed", showgrid=False, dtick=1),
        width=int(min(900, 62 * per_line + 200)),
        height=int(min(600, 44 * n_lines + 170)),
    )
    return apply_theme(fig)


def attribution_overlay_figure(
    image: np.ndarray, values: np.ndarray, *, label: str = "attribution", alpha: float = 0.6,
    title: str = "",
) -> go.Figure:  # fmt: skip
    """Pixel attributions (H, W) over the image (H, W[, 3]) on a diverging scale centred at 0."""
    values = np.asarray(values, dtype=np.float64)
    fig = vit_overlay_figure(image, values, alpha=alpha, title=title)
    bound = _symmetric(values)
    fig.update_traces(
        selector=dict(type="heatmap"), colorscale=DIVERGING, zmid=0.0, zmin=-bound, zmax=bound,
        zsmooth=False, colorbar=dict(title=dict(text=html.escape(label), side="right")),
    )  # fmt: skip
    return fig


def logit_lens_figure(
    frame: pd.DataFrame, *, color: str = "top", title: str = "", max_positions: int = 40
) -> go.Figure:
    """The logit-lens table of :func:`~explorer.interventions.logit_lens`: layer × position,
    each cell showing the top token; coloured by its probability (``color="top"``) or by the
    target's probability (``color="target"``); hover lists the top tokens and the target rank.
    Shows the last ``max_positions`` positions."""
    if color not in ("top", "target"):
        raise ValueError(f"color must be 'top' or 'target', got {color!r}")
    if color == "target" and not frame.is_target.any():
        raise ValueError("color='target' needs a frame computed with target=...")
    positions = sorted(frame.position.unique())[-max_positions:]
    layers = sorted(frame.layer.unique())
    df = frame[frame.position.isin(positions)]
    top1 = df[df["rank"] == 1].drop_duplicates(["layer", "position"])
    z = top1.pivot_table(index="layer", columns="position", values="probability").reindex(
        index=layers, columns=positions
    )
    words = top1.pivot(index="layer", columns="position", values="token").reindex(
        index=layers, columns=positions
    )
    if color == "target":
        z = df[df.is_target].pivot_table(index="layer", columns="position", values="probability")
        z = z.reindex(index=layers, columns=positions)
    hover = np.empty((len(layers), len(positions)), dtype=object)
    for (layer, pos), g in df.groupby(["layer", "position"]):
        i, j = layers.index(layer), positions.index(pos)
        tops = g[~g.is_target | (g["rank"] <= g["rank"].min())].sort_values("rank")
        lines = [f"{int(r['rank'])}. {html.escape(str(r.token))} {r.probability:.3f}"
                 for _, r in tops.head(5).iterrows()]  # fmt: skip
        tgt = g[g.is_target]
        if len(tgt):
            lines.append(f"target {html.escape(str(tgt.token.iloc[0]))}: rank "
                         f"{int(tgt['rank'].iloc[0])}, p {tgt.probability.iloc[0]:.3f}")  # fmt: skip
        hover[i, j] = "<br>".join(lines)
    inputs = df.drop_duplicates("position").set_index("position").loc[positions, "input"]
    n_layers = frame.attrs.get("n_layers", max(layers))
    row_names = ["embed" if k == 0 else ("output" if k == n_layers else f"block {k - 1}")
                 for k in layers]  # fmt: skip
    fig = go.Figure(
        go.Heatmap(
            z=z.to_numpy(dtype=np.float64), text=[escape_tokens(r) for r in words.to_numpy()],
            customdata=hover, texttemplate="%{text}", textfont=dict(size=11),
            x=list(range(len(positions))), y=list(range(len(layers))),
            colorscale=SEQUENTIAL, zmin=0.0, zmax=1.0, xgap=1, ygap=1,
            colorbar=dict(title=dict(
                text="top-1 probability" if color == "top" else "target probability",
                side="right")),
            hovertemplate="%{customdata}<extra></extra>",
        )
    )  # fmt: skip
    lens = frame.attrs.get("lens", "logit")
    fig.update_layout(
        title=html.escape(title or f"{lens} lens: top token per layer"),
        xaxis=dict(title="input token (position)", showgrid=False, tickangle=-60,
                   **token_axis(escape_tokens(list(inputs)))),
        yaxis=dict(title="read after", tickmode="array", tickvals=list(range(len(layers))),
                   ticktext=row_names, autorange="reversed", showgrid=False),
        width=int(min(900, max(460, 44 * len(positions) + 200))),
        height=int(min(640, max(280, 34 * len(layers) + 200))),
    )  # fmt: skip
    return apply_theme(fig)


def output_change_figure(
    before: np.ndarray, after: np.ndarray, labels: Sequence[Any], *, top: int = 10,
    names: tuple[str, str] = ("original", "intervened"), title: str = "",
) -> go.Figure:  # fmt: skip
    """Probabilities of the ``top`` tokens (by the larger of the two runs) before and after an
    intervention, as paired horizontal bars."""
    b, a = np.asarray(before, dtype=np.float64), np.asarray(after, dtype=np.float64)
    if b.shape != a.shape or b.ndim != 1 or len(labels) != len(b):
        raise ValueError(f"before {b.shape}, after {a.shape} and {len(labels)} labels must match")
    order = np.argsort(-np.maximum(a, b), kind="stable")[:top][::-1]
    text = escape_tokens([labels[i] for i in order])
    fig = go.Figure()
    for vals, name, colour in ((b, names[0], COLORWAY[0]), (a, names[1], COLORWAY[1])):
        fig.add_trace(go.Bar(
            x=vals[order], y=list(range(len(order))), orientation="h", name=html.escape(name),
            marker_color=colour, customdata=text,
            hovertemplate="%{customdata}: %{x:.3f}<extra>" + html.escape(name) + "</extra>",
        ))  # fmt: skip
    fig.update_layout(
        barmode="group", title=html.escape(title) if title else None,
        xaxis=dict(title="probability", range=[0, max(1e-9, float(np.max([a, b]))) * 1.05]),
        yaxis=dict(title="token", tickmode="array", tickvals=list(range(len(order))),
                   ticktext=text),
        legend=dict(orientation="h", y=-0.25), width=520, height=int(120 + 28 * len(order)),
    )  # fmt: skip
    return apply_theme(fig)
