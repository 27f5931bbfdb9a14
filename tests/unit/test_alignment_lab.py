"""Alignment figures and the AlignmentLab without a browser."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from explorer.analysis.alignment import similarity_matrix
from widgets.alignment import AlignmentLab
from widgets.figures.alignment import (
    HeatmapPanel,
    aligned_pair_figure,
    metric_curve_figure,
    similarity_heatmaps,
)


@pytest.fixture
def models() -> dict[str, dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((120, 6))
    q, _ = np.linalg.qr(rng.standard_normal((6, 6)))
    a = {
        "L0": x,
        "L1": np.tanh(x @ rng.standard_normal((6, 10))),
        "L2": rng.standard_normal((120, 3)),
    }
    b = {"L0": x @ q, "L1": np.tanh(x @ rng.standard_normal((6, 12)))}
    return {"seed 0": a, "seed 1": b}


def test_heatmap_axes_name_the_models():
    panel = HeatmapPanel(np.eye(3)[:, :2], ["a", "b", "c"], ["u", "v"], "ViT", "CNN")
    fig = similarity_heatmaps([panel], metric_label="linear CKA")
    assert fig.layout.yaxis.title.text == "ViT layer" and fig.layout.xaxis.title.text == "CNN layer"
    assert fig.layout.annotations[0].text == "ViT vs CNN"
    assert list(fig.layout.yaxis.ticktext) == ["a", "b", "c"]
    assert "ViT: %{customdata[0]}" in fig.data[0].hovertemplate
    with pytest.raises(ValueError, match="no panels"):
        similarity_heatmaps([])


def test_pair_and_curve_figures():
    rng = np.random.default_rng(1)
    fig = aligned_pair_figure(
        rng.random((50, 2)),
        rng.random((50, 2)),
        names=("A:L0", "B:L1"),
        labels=rng.integers(0, 3, 50),
    )
    legend = [
        (t.name, t.marker.symbol, t.marker.color) for t in fig.data if t.showlegend is not False
    ]
    assert legend[:2] == [("A:L0", "circle", "#555"), ("B:L1", "x", "#555")]
    assert len({color for _, _, color in legend[2:]}) == 3  # one colour per class
    frame = pd.DataFrame(
        {
            "step": [0, 10, 0, 10],
            "layer_a": ["L0", "L0", "L1", "L1"],
            "metric": "cka",
            "value": [0.1, 0.5, 0.2, 0.9],
        }
    )
    assert len(metric_curve_figure(frame).data) == 2
    with pytest.raises(ValueError, match="lacks"):
        metric_curve_figure(frame.drop(columns="value"))


def test_lab_shows_the_selected_pair(models, tmp_path):
    lab = AlignmentLab(models, labels=np.arange(120) % 2, out_dir=tmp_path)
    sel = lab.selection
    assert (sel["rows"], sel["cols"], sel["metric"]) == ("seed 0", "seed 1", "cka")
    expected = similarity_matrix(models["seed 0"], models["seed 1"], metric="cka")
    np.testing.assert_allclose(lab.matrix(), expected)
    assert lab.grid.shape == [1, 3, 2]
    assert lab.grid.row_labels == ["seed 0:L0", "seed 0:L1", "seed 0:L2"]
    assert "rows: seed 0" in lab.grid.caption and "columns: seed 1" in lab.grid.caption
    lab.click(0, 0)
    assert lab.selected_pair is not None and lab.selected_pair[:2] == ("L0", "L0")
    assert lab.selected_pair[2] == pytest.approx(1.0, abs=1e-9)  # a rotated copy
    lab.select(rows="seed 1", cols="seed 1", metric="procrustes")
    assert lab.matrix().shape == (2, 2) and lab.matrix()[0, 0] == pytest.approx(0.0, abs=1e-9)
    frame = lab.frame()
    assert list(frame.columns) == ["model_a", "layer_a", "model_b", "layer_b", "metric", "value"]
    assert lab.export(tmp_path / "h.html").stat().st_size > 1000
    assert pd.read_csv(lab.export(tmp_path / "m.csv")).shape == (4, 6)
    assert lab.grid.show_values and lab.grid.mark_cell  # values in cells, the clicked one marked
    lab.click(1, 0)
    pair = lab.frame("pair")
    assert set(pair.layer) == {"seed 1:L1", "seed 1:L0"} and len(pair) == 240
    assert lab.last_error is None


def test_pair_view_never_outlives_its_cell(models):
    lab = AlignmentLab(models)
    lab.select(rows="seed 0", cols="seed 0")
    lab.click(2, 2)
    assert lab.selected_pair is not None and lab.selected_pair[:2] == ("L2", "L2")
    assert "seed 0:L2" in lab.pair_view.layout.title.text
    lab.select(rows="seed 1")  # 2 layers: row 2 no longer exists
    assert lab.selected_pair is None
    assert lab.views == ("heatmap",) and "pair" not in lab.panels
    lab.click(1, 0)
    lab.select(cols="seed 1")  # the cell still exists: the pair view follows the new columns
    assert lab.selected_pair is not None and lab.selected_pair[:2] == ("L1", "L0")
    assert "seed 1:L0" in lab.pair_view.layout.title.text


def test_lab_add_model_and_bad_inputs(models):
    lab = AlignmentLab(models)
    lab.add_model("copy", models["seed 0"])
    assert lab.models == ["seed 0", "seed 1", "copy"]
    lab.select(rows="copy", cols="seed 0")
    np.testing.assert_allclose(np.diag(lab.matrix()), 1.0, atol=1e-12)
    with pytest.raises(ValueError, match="unknown model"):
        lab.select(rows="nope")
    with pytest.raises(ValueError, match="metric"):
        AlignmentLab(models, metric="cosine")
    with pytest.raises(ValueError, match="source="):
        AlignmentLab()
    with pytest.raises(TypeError, match="mapping"):
        AlignmentLab({"m": np.zeros((3, 3))})
