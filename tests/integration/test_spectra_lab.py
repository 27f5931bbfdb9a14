"""Spectrum figures and SpectrumLab without a browser: a model on a task, a model alone, raw
updates, a live recorder and a run directory, export."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from explorer.analysis import spectra as S
from explorer.data.images import image_task
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


def test_a_model_on_a_field_task(task, model) -> None:  # type: ignore[no-untyped-def]
    lab = SpectrumLab(source=(model, task))
    assert "xp-spectrum-lab" in lab._dom_classes
    assert lab.views == (
        "residual_spectrum",
        "output_spectrum",
        "layer_spectra",
        "weight_esd",
        "dashboard",
    )
    assert list(lab.layers) == ["layers.0.hook_post", "layers.1.hook_post"]
    assert lab.layer.options == ("layers.1.linear.weight",)
    assert lab.heatmap.shape == [1, 32, 1]  # 33 frequencies → 32 bands on the canvas
    assert lab.heatmap.colorbar_title and lab.heatmap.x_title == "step"
    assert [t.name for t in lab.current.data] == ["prediction", "target"]
    assert len(lab.esd_fig.data) >= 1 and "step 0" in lab.status
    lab.scale.value = "linear"
    assert lab.current.layout.yaxis.type == "linear" and lab.esd_fig.layout.xaxis.type == "linear"
    assert lab.current.layout.xaxis.title.text == "frequency (cycles per sample)"
    assert lab.heatmap.y_title == lab.to_figure("layer_spectra").layout.xaxis.title.text


def test_an_image_task_is_in_cycles_per_pixel() -> None:
    task = image_task("checker", size=16)
    lab = SpectrumLab(source=(MLP(MLPConfig(in_dim=2, out_dim=1, depth=1, width=8)), task))
    title = "frequency (cycles per pixel)"
    assert lab.current.layout.xaxis.title.text == title == lab.heatmap.y_title
    assert lab.to_figure("output_spectrum").layout.xaxis.title.text == title


def test_updates_without_a_source_replace_a_repeated_step(task) -> None:  # type: ignore[no-untyped-def]
    lab = SpectrumLab()
    assert lab.views == () and "waiting for data" in lab.status
    grid = task.meta["y_grid"].numpy()
    lab.set_target(grid, task.meta["shape"])
    lab.update(0.5 * grid, step=10)
    lab.update(grid, step=20)
    lab.update(0.5 * grid, step=10)  # the same step again: replaces, adds no column
    assert lab.steps == [10, 20] and lab.heatmap.shape == [1, 32, 2]
    res = lab.residual
    assert res is not None
    np.testing.assert_allclose(res.power[0].sum(), 0.25, rtol=1e-9)
    assert res.power[1].sum() == pytest.approx(0.0, abs=1e-20)
    frame = lab.frame("residual_spectrum")
    assert set(frame.step) == {10, 20} and set(frame.columns) == {"step", "frequency", "power"}


def test_weights_alone_show_one_panel_and_say_why(tmp_path) -> None:
    """Notebook 06's case: a model with no field task shows its weight ESD, not 3 empty panels."""
    net = torch.nn.Sequential(torch.nn.Linear(40, 30), torch.nn.ReLU(), torch.nn.Linear(30, 20))
    lab = SpectrumLab(source=net)
    assert lab.views == ("weight_esd", "dashboard") and list(lab.panels) == ["weight_esd"]
    hidden = [v for v, box in lab._boxes.items() if box.layout.display == "none"]
    assert hidden == ["residual_spectrum", "output_spectrum", "layer_spectra"]
    assert "no target on a grid" in lab.status and lab.last_error is None
    out = lab.export(tmp_path / "esd.html", "dashboard")
    assert "per-layer spectra" in out.read_text()  # the dashboard: every panel, empty ones blank
    esd = lab.frame("weight_esd")
    assert len(esd) == 20 and (esd.eigenvalue >= 0).all()


def test_follows_a_recorder_and_a_run_directory(task, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from explorer.train import Recorder, RunWriter, Trainer

    trainer = Trainer(lambda: MLP(MLPConfig(in_dim=1, out_dim=1, depth=2, width=16)), task, lr=1e-2)
    rec = Recorder(trainer, every=5)
    writer = RunWriter(tmp_path / "run", model=trainer.model, task=task, probe=rec.probe)
    rec.subscribe(writer.write_snapshot)
    lab = SpectrumLab(source=rec, min_interval_s=0.0)
    rec.record()
    for _ in trainer.run(10):
        rec.maybe_record()
    lab.wait()
    assert lab.steps == [0, 5, 10]
    assert set(lab.layers) == {"layers.0.hook_post", "layers.1.hook_post"}  # model at the step
    res = lab.residual
    assert res is not None and res.power[-1].sum() < res.power[0].sum()  # training reduces error
    replay = SpectrumLab(source=tmp_path / "run")
    assert replay.steps == [0, 5, 10] and replay.shown_step == 10
    np.testing.assert_allclose(replay.residual.power, res.power)
    replay.show_step(5)
    assert replay.residual.power.shape[0] == 2 and "step 5" in replay.status
    with pytest.raises(TypeError, match="cannot follow a object"):
        lab.follow(object())


def test_export_and_bad_formats(tmp_path, task, model) -> None:  # type: ignore[no-untyped-def]
    cache = capture(model, task.meta["x_grid"], ["layers.*.hook_pre"])
    lab = SpectrumLab()
    lab.update(activations=cache)
    assert set(lab.layers) == {"layers.0.hook_pre", "layers.1.hook_pre"}
    assert lab.views == ("layer_spectra", "dashboard")
    text = lab.export(tmp_path / "view.html", "layer_spectra").read_text()
    assert "per-layer spectra" in text and '<script src="http' not in text
    with pytest.raises(ValueError, match="unknown export format"):
        lab.export(tmp_path / "bad.xyz")


def test_weight_esd_survives_degenerate_matrices() -> None:
    lab = SpectrumLab()
    lab.update(params={"eye": torch.eye(20), "w": torch.randn(30, 20)})
    lab.layer.value = "eye"  # orthogonal: nothing to fit, the ESD still shows
    assert len(lab.esd_fig.data) == 1 and lab.last_error is None
