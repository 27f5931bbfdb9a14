"""TrainingLab without a browser: threading under rapid clicks, rebuilds while running,
divergence, scrubbing, subscribers, export and save."""

from __future__ import annotations

import random
import threading

import numpy as np
import pytest
import torch

from explorer.train.checkpoint import load_checkpoint
from widgets.figures import training as figs
from widgets.training import TrainingLab


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def training_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "xp-training-lab" and t.is_alive()]


@pytest.fixture
def lab(tmp_path):
    lab = TrainingLab(
        "moons",
        task_kwargs={"n": 200},
        model={"depth": 2, "width": 8},
        record_every=5,
        out_dir=tmp_path,
    )
    yield lab
    lab.close()
    assert not training_threads()


def test_play_trains_in_one_background_thread_and_pause_stops_it(lab):
    lab.play()
    lab.play()
    assert len(training_threads()) == 1
    lab.wait(steps=60)
    lab.pause()
    assert not lab.running and not training_threads()
    evals = [h for h in lab.trainer.history if "train_loss" in h]
    assert len(evals) >= 2 and evals[-1]["train_loss"] < evals[0]["train_loss"]
    assert lab.recorder.steps[0] == 0 and lab.recorder.latest.step == lab.trainer.global_step
    assert lab.shown is lab.recorder.latest


def test_a_hundred_rapid_clicks_leave_one_thread_or_none(lab):
    rng = random.Random(0)
    names = ["Play", "Pause", "Step", "Reset"]
    max_seen = 0

    def clicker(n: int) -> None:
        nonlocal max_seen
        for _ in range(n):
            lab._buttons[rng.choice(names)].click()
            max_seen = max(max_seen, len(training_threads()))

    workers = [threading.Thread(target=clicker, args=(50,)) for _ in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert max_seen <= 1
    assert len(training_threads()) == (1 if lab.running else 0)
    lab._buttons["Pause"].click()
    assert not training_threads()
    # state is consistent: history, recorder and step agree
    t = lab.trainer
    assert len(t.history) == t.global_step
    assert all(s <= t.global_step for s in lab.recorder.steps)
    assert lab.last_error is None


def test_changing_the_architecture_while_running_rebuilds_and_continues(lab):
    lab.play()
    lab.wait(steps=20)
    old = lab.trainer
    lab._c["depth"].value = 3
    assert lab.running and lab.trainer is not old
    assert len(lab.trainer.model.layers) == 3
    lab.wait(steps=10)
    lab.pause()
    assert lab.trainer.global_step >= 10 and len(training_threads()) == 0
    assert lab.recorder.trainer is lab.trainer and lab.recorder.steps[0] == 0


def test_learning_rate_changes_live_without_restart(lab):
    lab.step(5)
    lab._c["lr"].value = 1e-4
    assert lab.trainer.global_step == 5
    lab.step()
    assert lab.trainer.history[-1]["lr"] == pytest.approx(1e-4)


def test_divergence_pauses_restores_and_says_why(tmp_path):
    lab = TrainingLab("signal_1d", train={"optimizer": "sgd", "lr": 10.0}, out_dir=tmp_path)
    try:
        lab.play()
        lab.wait(timeout=30)
        assert not lab.running
        assert lab.last_error is not None and "Diverged" in lab.last_error
        assert "Diverged" in lab._status.value
        assert all(torch.isfinite(p).all() for p in lab.trainer.model.parameters())
    finally:
        lab.close()


def test_scrub_shows_the_old_snapshot_everywhere(lab):
    lab.step(30)
    seen = []
    unsubscribe = lab.subscribe(lambda s: seen.append(s.step))
    snap = lab.scrub(10)
    assert snap.step == 10 and seen[-1] == 10
    z, _, _ = figs.surface_map(snap.predictions, lab.recorder.probe.shape)
    shown = np.frombuffer(lab._grid.values, dtype=np.float32).reshape(z.shape)
    np.testing.assert_array_equal(shown, z)
    assert lab._slider.value == lab.recorder.steps.index(10)
    assert lab._metrics.layout.shapes[0].x0 == 10  # marker on the loss curve
    lab._slider.value = lab._slider.max  # back to the end follows live again
    assert lab.shown is lab.recorder.latest and seen[-1] == lab.recorder.latest.step
    unsubscribe()
    lab.step()
    assert seen[-1] != lab.trainer.global_step


def test_views_per_task_kind():
    lab = TrainingLab("signal_1d", model={"depth": 2, "width": 16})
    try:
        lab.step(20)
        assert lab._fit is not None and lab._spectrum_grid is not None
        assert lab._spectrum_grid.shape[1:] == [
            len(lab.task.meta["x_grid"]) // 2 + 1,
            len(lab.recorder),
        ]
        lab._c["task"].value = "copy"
        lab._c["n_layers"].value = 1
        lab.step(2)
        heads = lab._c["n_heads"].value
        assert lab._grid.shape == [heads, lab.task.meta["seq_len"], lab.task.meta["seq_len"]]
        assert (
            lab._grid.row_labels[0] == lab.task.meta["vocab"][int(lab.recorder.probe.inputs[0, 0])]
        )
    finally:
        lab.close()


def test_export_views_history_and_save(lab, tmp_path):
    lab.step(12)
    for view in ("main", "metrics"):
        html = lab.export(tmp_path / f"{view}.html", view).read_text()
        assert "<html" in html and '<script src="http' not in html
    with pytest.raises(ValueError, match="signal and image"):
        lab.to_figure("spectrum")
    df = __import__("pandas").read_csv(lab.export_history(tmp_path / "h.csv"))
    assert set(df.columns) == {"step", "metric", "value"} and df.step.max() == 12
    assert lab.export_history(tmp_path / "h.parquet").stat().st_size > 0
    lab._buttons["Save"].click()
    path = tmp_path / "moons_step12.safetensors"
    assert path.exists(), lab._status.value
    model = lab._trainer.model
    expected = {k: v.clone() for k, v in model.state_dict().items()}
    lab.reset()
    loaded = load_checkpoint(path, lab.trainer.model)
    got = lab.trainer.model.state_dict()
    assert all(torch.equal(got[k], expected[k]) for k in expected), loaded


def test_bad_arguments():
    with pytest.raises(ValueError, match="task must be one of"):
        TrainingLab("mnist")
    with pytest.raises(ValueError, match="unknown model knob"):
        TrainingLab("moons", model={"dept": 3})
    with pytest.raises(TypeError, match="callable"):
        TrainingLab("moons").subscribe(3)  # type: ignore[arg-type]
