"""GeometryLab without a browser: arrays, a live TrainingLab, model point clouds, exports."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from explorer.analysis.geometry import knn, twonn
from explorer.analysis.geometry.sources import model_points
from explorer.models import MLP, MLPConfig, Transformer, TransformerConfig
from widgets.figures import geometry as figs
from widgets.geometry import GeometryLab
from widgets.training import TrainingLab


def clouds(n: int = 600, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 3))
    return {"a": z @ rng.normal(size=(3, 12)), "b": np.tanh(z @ rng.normal(size=(3, 20)))}


def test_lab_on_arrays_pick_select_export(tmp_path) -> None:
    layers = clouds()
    meta = pd.DataFrame({"label": np.arange(600) % 3, "position": np.arange(600) % 17})
    lab = GeometryLab(layers, metadata=meta, inputs=[f"<b>item {i}</b>" for i in range(600)])
    assert lab.selection["color"] == "label" and lab.last_error is None
    assert len(lab.scatter.data) == 3  # one trace per label
    lab.pick(5)
    ref = knn(layers["a"], 10).indices[5]
    np.testing.assert_array_equal(lab.neighbors, ref)
    assert "&lt;b&gt;item 5&lt;/b&gt;" in lab.info.value  # user text is escaped
    assert any(tr.name == "neighbours" for tr in lab.scatter.data)
    lab.select("b", dims=3, color="position")
    assert lab.scatter.data[0].type == "scatter3d" and lab.last_error is None
    coords = lab.coordinates()
    assert list(coords.columns[:4]) == ["point", "x", "y", "z"] and len(coords) == 600
    df = lab.metrics()
    got = df.query("layer == 'a' and metric == 'twonn'").value.item()
    assert got == pytest.approx(twonn(layers["a"]))
    assert lab.export(tmp_path / "c.csv").stat().st_size > 0
    assert lab.export(tmp_path / "s.html").read_text().count("scatter3d") >= 1


def test_large_clouds_are_subsampled_visibly() -> None:
    rng = np.random.default_rng(1)
    lab = GeometryLab({"x": rng.normal(size=(3000, 4))}, max_points=500)
    shown = sum(len(tr.x) for tr in lab.scatter.data)
    assert shown == 500 and "showing 500 of 3,000" in lab.scatter.layout.title.text
    lab.pick(2999)  # the picked point is always drawn, even outside the subsample
    assert any(tr.name == "picked" for tr in lab.scatter.data)


def test_model_points_tokens_and_samples() -> None:
    tf = Transformer(TransformerConfig(vocab_size=7, n_ctx=5, d_model=16, n_layers=2, n_heads=2))
    pts, meta = model_points(tf, torch.randint(0, 7, (6, 5)), labels=np.arange(6), pool="tokens")
    assert list(pts) == ["embed", "L0", "L1"] and pts["L1"].shape == (30, 16)
    assert list(meta.columns) == ["sample", "position", "label"] and meta.position.max() == 4
    mlp = MLP(MLPConfig(in_dim=2, out_dim=3, depth=2, width=8))
    pts, meta = model_points(mlp, torch.randn(9, 2))
    assert all(v.shape[0] == 9 for v in pts.values()) and list(meta.columns) == ["sample"]


def test_lab_follows_a_training_run_and_its_task_changes(tmp_path) -> None:
    tl = TrainingLab("spirals", record_every=10, model={"depth": 3, "width": 16}, out_dir=tmp_path)
    tl.step(20)
    lab = GeometryLab(source=tl, n_inputs=200, min_interval_s=0.0)
    assert lab.last_error is None and lab.shown_step == 20
    tl.step(20)
    lab.wait()
    hist = lab.metrics()
    assert {"layer", "step", "metric", "value"} <= set(hist.columns)
    assert hist.step.nunique() >= 2 and "training" in lab.views
    lab.select(color="step")
    frame = lab.frame("scatter")
    shown = sum(len(tr.x) for tr in lab.scatter.data)
    assert shown == len(frame) and frame.step.nunique() >= 2 and lab.last_error is None
    lab.pick(3)
    assert "input [" in lab.info.value
    # a regression task without labels: the colour menu loses "label" and the lab goes on
    tl.configure(task="signal_1d")
    tl.step(5)
    lab.wait()
    assert "label" not in lab.frame("scatter").columns and lab.last_error is None
    assert "twonn of 'input'" in lab.status  # a 1-D grid is a lattice: said, not an error
    # a new task in the training lab: the points are its inputs, not the old task's
    tl.configure(task="moons", n=300)
    tl.step(10)
    lab.wait()
    lab.select(color="step")
    coords = lab.frame("scatter")
    assert lab.selection["step"] == 10 and set(coords.step) == {0, 10}  # the new run's steps
    assert (coords.step == 10).sum() == min(200, len(tl.task.x_test))
    lab.close()
    tl.close()


def test_neighbour_text_names_the_layer_on_view() -> None:
    layers = clouds()
    lab = GeometryLab(layers)
    lab.pick(7)
    assert "in the a space" in lab.info.value
    lab.select("b")
    assert "in the b space" in lab.info.value and "in the a space" not in lab.info.value
    np.testing.assert_array_equal(lab.neighbors, knn(layers["b"], 10).indices[7])


def test_your_own_module_on_your_inputs() -> None:
    """No explorer hook points: the activation modules' outputs and the output are the layers."""
    net = torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2))
    x = torch.randn(80, 3)
    lab = GeometryLab(source=(net, x))
    assert lab.layers == ["1", "2"] and lab.last_error is None
    with torch.no_grad():
        hidden = torch.tanh(net[0](x)).numpy()
    assert lab.metrics().query("layer == '1' and metric == 'participation_ratio'").value.item() > 1
    coords = lab.frame("scatter")[["x", "y"]].to_numpy()  # PCA of the hidden layer (the first)
    top2 = np.sort(np.linalg.eigvalsh(np.cov(hidden.T)))[-2:].sum()
    np.testing.assert_allclose(coords.var(0, ddof=1).sum(), top2, rtol=1e-3)


def test_follows_a_saved_run_directory(tmp_path) -> None:
    tl = TrainingLab("moons", task_kwargs={"n": 200}, record_every=10, out_dir=tmp_path)
    tl.step(30)
    path = tl.save()
    tl.close()
    lab = GeometryLab(source=path, n_inputs=100)
    assert lab.shown_step == 30 and lab.layers == ["input", "L0", "L1", "L2"]
    lab.show_step(10)
    assert lab.selection["step"] == 10 and lab.metrics().step.max() == 30
    assert lab.export(tmp_path / "layers.csv", "layers").stat().st_size > 0


def test_figures_reject_bad_coordinates() -> None:
    with pytest.raises(ValueError, match=r"shape \(m, 2\) or \(m, 3\)"):
        figs.scatter_figure(np.zeros((4, 5)))
    np.testing.assert_array_equal(figs.display_subsample(5, 10), np.arange(5))
    sub = figs.display_subsample(1000, 50, keep=[999])
    assert 999 in sub and len(sub) <= 51


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="give layers="):
        GeometryLab()
    with pytest.raises(ValueError, match="same n"):
        GeometryLab({"a": np.zeros((5, 2)), "b": np.zeros((6, 2))})
    with pytest.raises(ValueError, match="metadata has 2 rows"):
        GeometryLab(clouds(), metadata={"label": [0, 1]})
    lab = GeometryLab(clouds(100))
    with pytest.raises(ValueError, match="unknown layer"):
        lab.select("zzz")
    with pytest.raises(ValueError, match="index must be in"):
        lab.pick(100)
