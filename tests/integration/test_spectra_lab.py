"""Spectrum figures and SpectrumLab without a browser: standalone, attached, scrubbed, exported."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from explorer.analysis import spectra as S
from explorer.data.signals import signal_1d
from explorer.models import MLP, MLPConfig
from explorer.models.hooks import capture
from widgets.figures import spectra as figs
from widgets.spectrum import SpectrumLab


@pytest.fixture(scope="module")
def task():  # type: ignore[no-untyped-def]
    return signal_1d("sines", 64, frequencies=(1, 6, 20))


@pytest.fixture(scope="module")
def model() -> MLP:
    return MLP(MLPConfig(in_dim=1, out_dim=1, depth=2, width=16))


def test_figure_builders() -> None:
    x = np.cos(2 * np.pi * 3 * np.arange(32) / 32)
    spec = S.power_spectrum(np.stack([x, 2 * x]))
    fig = figs.spectrum_figure(
        {"a": spec, "target": S.power_spectrum(x)}, log=True, dashed=["target"]
    )
    assert [t.name for t in fig.data] == ["a", "target"] and fig.layout.yaxis.type == "log"
    assert fig.data[1].line.dash == "dash"
    np.testing.assert_allclose(fig.data[0].y, np.maximum(spec.power.mean(0), figs.FLOOR))
    assert figs.spectrum_figure({"a": spec}, log=False, log_x=True).data[0].x[0] > 0  # DC dropped

    res = S.residual_spectrum(np.zeros((3, 32)), x)
    heat = figs.residual_history_figure([0, 5, 10], res)
    assert np.asarray(heat.data[0].z).shape == (17, 3)
    with pytest.raises(ValueError, match="len\\(steps\\)"):
        figs.residual_history_figure([0, 5], res)

    rng = np.random.default_rng(0)
    lam = np.r_[rng.uniform(0.1, 1, 50), (1 - rng.random(200)) ** (-1 / 1.5)]
    fit = S.fit_power_law(lam)
    esd = figs.esd_figure(lam, fit)
    assert len(esd.data) == 2 and "α=" in esd.data[1].name and esd.layout.xaxis.type == "log"
    assert len(figs.esd_figure(None).data) == 0

    zp = figs.zp_figure({"emb": S.zp_fourier_power(rng.standard_normal((11, 4)))})
    assert np.asarray(zp.data[0].y).sum() == pytest.approx(1.0)
    dash = figs.dashboard_figure(
        steps=[0, 5, 10], residual=res, current={"p": spec}, eigenvalues=lam, fit=fit
    )
    assert len(dash.data) == 4


def test_standalone_lab_on_a_model(task, model) -> None:  # type: ignore[no-untyped-def]
    lab = SpectrumLab(model, task)
    assert "xp-spectrum-lab" in lab._dom_classes
    assert list(lab.layers) == ["layers.0.hook_post", "layers.1.hook_post"]
    assert (
        lab.layer.options == ("layers.1.linear.weight",)
        and lab.layer.value == "layers.1.linear.weight"
    )
    assert lab.heatmap.shape == [1, 32, 1]  # 33 frequencies → 32 bands on the canvas
    grid = task.meta["y_grid"].numpy()
    lab.update(0.5 * grid, step=10)
    lab.update(grid, step=20)
    lab.update(0.5 * grid, step=10)  # scrub back: replaces, adds no column
    assert lab.steps == [0, 10, 20] and lab.heatmap.shape == [1, 32, 3]
    res = lab.residual
    assert res is not None
    np.testing.assert_allclose(res.power[1].sum(), 0.25, rtol=1e-9)
    assert res.power[2].sum() == pytest.approx(0.0, abs=1e-20)
    lab._draw(force=True)
    assert [t.name for t in lab.current.data] == ["prediction", "target"]
    assert len(lab.esd_fig.data) >= 1 and "step 20" in lab.status.value
    lab.scale.value = "linear"
    assert lab.current.layout.yaxis.type == "linear" and lab.esd_fig.layout.xaxis.type == "linear"


def test_live_updates_are_throttled_but_the_last_one_lands(task, model) -> None:  # type: ignore[no-untyped-def]
    lab = SpectrumLab(model, task, min_interval=0.2)
    grid = task.meta["y_grid"].numpy()
    for step in range(1, 6):
        lab.update(grid * step / 5, step=step)
    assert lab.heatmap.shape == [1, 32, 6]  # the canvas takes every update
    time.sleep(0.5)
    pred = next(t for t in lab.current.data if t.name == "prediction")
    np.testing.assert_allclose(pred.y, np.maximum(S.power_spectrum(grid.T).power[0], figs.FLOOR))


def test_from_capture_and_export(tmp_path, task, model) -> None:  # type: ignore[no-untyped-def]
    cache = capture(model, task.meta["x_grid"], ["layers.*.hook_pre"])
    lab = SpectrumLab.from_capture(cache)
    assert set(lab.layers) == {"layers.0.hook_pre", "layers.1.hook_pre"}
    out = lab.export(tmp_path / "view.html")
    text = out.read_text()
    assert "per-layer spectra" in text and '<script src="http' not in text
    lab.export_box.value = str(tmp_path / "bad.xyz")
    lab._export_clicked()
    assert "export failed" in lab.status.value


def test_attached_to_a_recorder_replays_and_follows(task) -> None:  # type: ignore[no-untyped-def]
    from explorer.train import Recorder, Trainer

    trainer = Trainer(lambda: MLP(MLPConfig(in_dim=1, out_dim=1, depth=2, width=16)), task, lr=1e-2)
    rec = Recorder(trainer, every=5)
    rec.record()
    for _ in trainer.run(10):
        rec.maybe_record()
    lab = SpectrumLab(attach=rec)
    assert lab.steps == [0, 5, 10]
    assert set(lab.layers) == {"layers.0.hook_post", "layers.1.hook_post"}  # from the shadow copy
    res = lab.residual
    assert res is not None and res.power[-1].sum() < res.power[0].sum()  # training reduces error
    with pytest.raises(TypeError, match="TrainingLab or a Recorder"):
        lab.attach(object())


def test_weight_esd_survives_degenerate_matrices(task) -> None:  # type: ignore[no-untyped-def]
    lab = SpectrumLab()
    lab.update(params={"eye": torch.eye(20), "w": torch.randn(30, 20)})
    lab.layer.value = "eye"
    lab._draw(force=True)  # orthogonal: nothing to fit, the ESD still shows
    assert len(lab.esd_fig.data) == 1
