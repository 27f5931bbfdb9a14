"""Pure figure builders of the training lab: layouts of maps and points, curves, figures."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import pytest

from widgets.figures import training as figs


def test_curve_thins_evenly_and_keeps_the_last_point():
    hist = [
        {"step": i + 1, "loss": 1.0 / (i + 1)} | ({"test_loss": 2.0} if i % 10 == 0 else {})
        for i in range(1000)
    ]
    x, y = figs.curve(hist, "loss", max_points=100)
    assert len(x) == 100 and x[0] == 1 and x[-1] == 1000 and np.all(np.diff(x) > 0)
    np.testing.assert_allclose(y, 1.0 / x)
    x, _ = figs.curve(hist, "test_loss")
    assert list(x[:2]) == [1, 11]
    assert figs.curve(hist, "missing")[0].size == 0


def test_live_curves_read_only_new_rows_and_reread_a_history_that_was_cut_or_replaced():
    def rows(start, stop, scale=1.0):
        return [{"step": i, "loss": scale / i} | ({"test_acc": i / stop} if i % 7 == 0 else {})
                for i in range(start, stop)]  # fmt: skip

    hist = rows(1, 500)
    curves = figs.Curves(["loss", "test_acc"])
    curves.update(hist[:123])
    curves.update(hist)  # grown at its end
    for key in ("loss", "test_acc"):
        np.testing.assert_array_equal(curves.get(key, 50), figs.curve(hist, key, 50))
    hist[0]["loss"] = -1.0  # rows already read are not read again
    assert curves.get("loss", 1000)[1][0] == 1.0
    cut = hist[:300] + rows(300, 350, scale=2.0)  # rolled back to step 300, trained on
    curves.update(cut)
    np.testing.assert_array_equal(curves.get("loss", 1000), figs.curve(cut, "loss", 1000))
    other = rows(1, 80, scale=3.0)  # another run, shorter
    curves.update(other)
    np.testing.assert_array_equal(curves.get("loss", 1000), figs.curve(other, "loss", 1000))
    curves.update([])
    assert curves.get("loss")[0].size == 0 and curves.get("missing")[0].size == 0


def test_surface_map_is_top_down_and_points_land_on_their_cells():
    res = 4
    gx, gy = np.meshgrid(np.linspace(0, 1, res), np.linspace(0, 1, res))  # rows along y
    p1 = (gy * 0.5 + gx * 0.25).reshape(-1)
    probs = np.stack([1 - p1, p1], 1)
    z, lo, hi = figs.surface_map(probs, (res, res))
    assert (lo, hi) == (0.0, 1.0)
    assert z[0, 0] == pytest.approx(0.5) and z[-1, 0] == pytest.approx(0.0)  # top row = largest x2
    pts = figs.surface_points(
        np.array([[0.0, 1.0], [1.0, 0.0]]), np.array([0, 1]), (res, res), (0, 1, 0, 1)
    )
    np.testing.assert_allclose(pts, [[0, 0, 0], [3, 3, 1]])
    three = np.eye(3)[np.array([0, 1, 2, 2])]
    z3, _, hi3 = figs.surface_map(three, (2, 2))
    assert hi3 == 2 and z3.tolist() == [[2, 2], [0, 1]]


def test_attention_maps_order_layers_and_heads():
    pats = {
        f"blocks.{i}.attn.hook_pattern": np.full((2, 3, 4, 4), i / 10, np.float32) for i in (1, 0)
    }
    maps, titles = figs.attention_maps(pats)
    assert maps.shape == (6, 4, 4) and titles[:4] == ["L0 H0", "L0 H1", "L0 H2", "L1 H0"]
    assert maps[0, 0, 0] == 0 and maps[3, 0, 0] == pytest.approx(0.1)
    fig = figs.attention_figure(pats, ["a", "b", "<script>", "a"])
    assert len(fig.data) == 6 and list(fig.data[0].x) == [0, 1, 2, 3]  # "a" twice: 2 columns
    assert list(fig.layout.xaxis.ticktext) == ["a", "b", "&lt;script&gt;", "a"]


def test_figures_build():
    hist = [{"step": 1, "loss": 1.0, "train_loss": 1.0, "test_loss": 1.1, "test_acc": 0.5, "train_acc": 0.5},
            {"step": 2, "loss": 0.5}]  # fmt: skip
    fig = figs.metrics_figure(hist, step=2)
    assert isinstance(fig, go.Figure) and len(fig.data) == 5 and fig.layout.shapes[0].x0 == 2
    assert len(figs.metrics_figure(hist, accuracy=False).data) == 3
    probs = np.full((16, 2), 0.5)
    fig = figs.decision_surface_figure(
        probs, (4, 4), (0, 1, 0, 1), np.zeros((3, 2)), np.array([0, 1, 1])
    )
    assert fig.data[0].z.shape == (4, 4)
    assert [len(t.x) for t in fig.data[1:]] == [1, 2]  # one trace (legend entry) per class
    assert fig.data[1].marker.color != fig.data[2].marker.color
    assert len(figs.signal_figure(np.arange(5), np.ones(5), np.zeros(5)).data) == 2
    maps = figs.image_maps(np.zeros((6, 3)), np.ones((6, 3)), (2, 3))
    assert maps.shape == (2, 2, 3) and maps[1].min() == 1
    assert len(figs.image_figure(np.zeros(6), np.ones(6), (2, 3)).data) == 2
    probs = np.eye(3)[[0, 2, 1, 1]]  # predicted 0, 2, 1, 1 against true 0, 1, 1, 1
    fig = figs.sample_predictions_figure(
        np.zeros((4, 5, 5)), probs, [0, 1, 1, 1], classes=["a", "b", "c"]
    )
    titles = [a.text for a in fig.layout.annotations]
    assert len(fig.data) == 4 and titles == ["a", "c ✗ (b)", "b", "b"]
