"""TrainingLab without a browser, through its public surface only: threading under rapid
clicks, rebuilds while running, per-task-family defaults, out-of-range values, divergence,
stepping back, your own model and data, save → load → continue, export."""

from __future__ import annotations

import random
import threading

import numpy as np
import pandas as pd
import pytest
import torch

from explorer.device import torch_threads
from explorer.train import Run
from widgets.figures import training as figs
from widgets.training import TrainingLab


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
    assert lab.shown_step == lab.trainer.global_step
    assert lab.status == f"paused at step {lab.trainer.global_step}"


def test_wait_sleeps_until_the_training_thread_wakes_it(lab):
    """wait(steps=…) does not poll (a waiter waking often takes the GIL from training): the
    training thread wakes it when the step is reached, while training goes on."""
    woken = []

    class Spy(threading.Condition):
        def notify_all(self) -> None:
            woken.append(lab.trainer.global_step)
            super().notify_all()

    lab._progress = Spy()
    lab.play()
    lab.wait(steps=40, timeout=60)
    assert lab.running and lab.trainer.global_step >= 40
    assert woken and woken[0] >= 40 and lab._wake_at is None
    lab.pause()


def test_a_hundred_rapid_clicks_leave_one_thread_or_none(lab):
    rng = random.Random(0)
    names = ["Play", "Pause", "Step", "Reset"]
    max_seen = 0

    def clicker(n: int) -> None:
        nonlocal max_seen
        for _ in range(n):
            lab.buttons[rng.choice(names)].click()
            max_seen = max(max_seen, len(training_threads()))

    workers = [threading.Thread(target=clicker, args=(50,)) for _ in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert max_seen <= 1
    assert len(training_threads()) == (1 if lab.running else 0)
    lab.buttons["Pause"].click()
    assert not training_threads()
    t = lab.trainer  # state is consistent: history, recorder and step agree
    assert len(t.history) == t.global_step
    assert all(s <= t.global_step for s in lab.recorder.steps)
    assert lab.last_error is None


def test_changing_the_architecture_while_running_rebuilds_and_continues(lab):
    lab.play()
    lab.wait(steps=20)
    old = lab.trainer
    lab.controls["depth"].value = 3
    assert lab.running and lab.trainer is not old
    assert len(lab.trainer.model.layers) == 3
    lab.wait(steps=10)
    lab.pause()
    assert lab.trainer.global_step >= 10 and len(training_threads()) == 0
    assert lab.recorder.trainer is lab.trainer and lab.recorder.steps[0] == 0


def test_learning_rate_changes_live_without_restart(lab):
    lab.step(5)
    lab.controls["lr"].value = 1e-4
    assert lab.trainer.global_step == 5
    lab.step()
    assert lab.trainer.history[-1]["lr"] == pytest.approx(1e-4)


def test_task_families_switch_controls_and_defaults(lab):
    """Each control has its own layout (hiding one never hides another); sequence tasks get
    a transformer, batch 64 and lr 3e-3 and no toy sliders; images get a CNN or ViT."""
    layouts = [w.layout for w in lab.controls.values()]
    assert len({id(x) for x in layouts}) == len(layouts)
    lab.configure(task="copy")
    c = lab.controls
    assert c["family"].value == "transformer" and "n_heads" in c and "width" not in c
    assert (c["lr"].value, c["batch_size"].value) == (pytest.approx(3e-3), 64)
    assert c["noise"].layout.display == "none" and c["n"].layout.display == "none"
    assert c["task"].layout.display != "none" and c["test_fraction"].layout.display != "none"
    assert lab.views == ("metrics", "attention")
    lab.configure(task="digits", family="vit")
    assert type(lab.trainer.model).__name__ == "ViT" and lab.views == ("metrics", "predictions")
    lab.configure(task="image")
    c = lab.controls
    assert (
        c["family"].value == "mlp"
        and c["width"].value == 64
        and c["lr"].value == pytest.approx(1e-3)
    )
    assert c["test_fraction"].layout.display == "none" and c["task"].layout.display != "none"
    lab.configure(family="neural_field", depth=2)
    assert type(lab.trainer.model).__name__ == "NeuralField"
    assert set(lab.views) == {"metrics", "predictions", "residual_spectrum"}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"model": {"width": -1}}, r"width must be in \[2, 256\], got -1"),
        ({"train": {"lr": 1e3}}, r"lr must be in \[1e-05, 10\], got 1000"),
        (
            {"task": "copy", "model": {"n_heads": 3}},
            r"n_heads must be one of \[1, 2, 4, 8\], got 3",
        ),
        ({"model": {"activation": "bogus"}}, r"activation must be one of .*got 'bogus'"),
        ({"model": {"dept": 3}}, "unknown mlp setting 'dept'"),
        ({"task": "mnist"}, "task must be one of"),
        ({"task_kwargs": {"noise": 2.0}}, r"noise must be in \[0, 0.5\], got 2.0"),
        ({"threads": 0}, "threads must be an integer >= 1, got 0"),
    ],
)
def test_out_of_range_values_name_the_field_and_range(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TrainingLab(**kwargs)


def _training_thread_counts(lab: TrainingLab, steps: int) -> set[int]:
    """torch's thread count seen by each step the lab's training thread takes."""
    seen: set[int] = set()
    step = lab.trainer.step

    def counted() -> dict[str, float]:
        seen.add(torch.get_num_threads())
        return step()

    lab.trainer.step = counted  # type: ignore[method-assign]
    lab.play()
    lab.wait(steps=lab.trainer.global_step + steps)
    lab.pause()
    return seen


def test_the_training_thread_runs_torch_on_the_labs_thread_count(lab, tmp_path):
    """A built-in (tiny) model trains on one torch thread, a user's model on torch's count, an
    explicit ``threads`` wins; the kernel's own count is left as it was."""
    before = torch.get_num_threads()
    assert lab.threads == 1 and _training_thread_counts(lab, 10) == {1}
    assert torch.get_num_threads() == before
    two = TrainingLab("moons", task_kwargs={"n": 200}, threads=2, out_dir=tmp_path)
    net = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    with torch_threads(3):  # torch's count when the lab is made
        own = TrainingLab("moons", task_kwargs={"n": 200}, model=net, out_dir=tmp_path)
    try:
        assert _training_thread_counts(two, 10) == {2}
        assert own.threads == 3 and _training_thread_counts(own, 10) == {3}
    finally:
        two.close()
        own.close()
    assert torch.get_num_threads() == before


def test_configure_checks_everything_before_changing_anything(lab):
    lab.step(3)
    trainer = lab.trainer
    with pytest.raises(ValueError, match="width must be in"):
        lab.configure(depth=3, width=-1)
    assert lab.trainer is trainer and lab.controls["depth"].value == 2
    with pytest.raises(ValueError, match=r"n must be an integer >= 1, got -3"):
        lab.step(-3)
    lab.configure(batch_size=100)  # any batch size is accepted: it joins the menu
    assert lab.controls["batch_size"].value == 100 and lab.trainer.config.batch_size == 100


def _diverged_lab(tmp_path):
    lab = TrainingLab("signal_1d", train={"optimizer": "sgd", "lr": 10.0}, out_dir=tmp_path)
    lab.play()
    lab.wait(timeout=30)
    return lab


def test_divergence_pauses_keeps_a_finite_state_and_says_why(tmp_path):
    lab = _diverged_lab(tmp_path)
    try:
        assert not lab.running
        assert lab.last_error is not None and "Diverged" in lab.last_error
        assert "Diverged" in lab.status and "Lower the learning rate" in lab.status
        assert all(torch.isfinite(p).all() for p in lab.trainer.model.parameters())
        assert all(s <= lab.trainer.global_step for s in lab.recorder.steps)
        lab.controls["lr"].value = 1e-3
        assert "press Play to continue" in lab.status
        assert lab.trainer.config.lr == pytest.approx(1e-3)
    finally:
        lab.close()


def test_divergence_continues_after_lowering_the_learning_rate(tmp_path):
    lab = _diverged_lab(tmp_path)
    try:
        lab.controls["lr"].value = 1e-3
        before = lab.trainer.global_step
        lab.buttons["Play"].click()
        lab.wait(steps=before + 20, timeout=30)
        lab.pause()
        assert lab.trainer.global_step >= before + 20, lab.status
        assert np.isfinite(lab.trainer.history[-1]["loss"]) and lab.last_error is None
    finally:
        lab.close()


def test_show_step_shows_the_old_snapshot_everywhere(lab):
    lab.step(30)
    lab.show_step(10)
    snap = lab.shown
    assert snap.step == 10 and lab.shown_step == 10
    z, _, _ = figs.surface_map(snap.predictions, lab.recorder.probe.shape)
    grid = lab.panels["predictions"]
    np.testing.assert_array_equal(np.frombuffer(grid.values, dtype=np.float32).reshape(z.shape), z)
    metrics = lab.panels["metrics"]
    assert metrics.layout.shapes[0].x0 == 10  # marker on the loss curve
    lab.show_step(lab.recorder.steps[-1])  # back at the end: follows live again
    lab.step()
    assert lab.shown_step == lab.trainer.global_step


def test_other_labs_follow_the_recorder_not_the_widget(lab):
    seen = []
    unsubscribe = lab.recorder.subscribe(lambda s: seen.append(s.step))
    lab.step(12)
    assert seen[-1] == 12 and 10 in seen
    unsubscribe()
    lab.step()
    assert seen[-1] == 12


def test_views_per_task_kind(tmp_path):
    lab = TrainingLab("signal_1d", model={"depth": 2, "width": 16}, out_dir=tmp_path)
    try:
        lab.step(20)
        spectrum = lab.panels["residual_spectrum"]
        assert spectrum.shape[1:] == [len(lab.task.meta["x_grid"]) // 2 + 1, len(lab.recorder)]
        residual = lab.frame("residual_spectrum")
        assert set(residual.columns) == {"step", "frequency", "power"}
        assert sorted(residual.step.unique()) == lab.recorder.steps
        lab.configure(task="copy", n_layers=1)
        lab.step(2)
        grid, heads = lab.panels["attention"], lab.controls["n_heads"].value
        assert grid.shape == [heads, lab.task.meta["seq_len"], lab.task.meta["seq_len"]]
        assert grid.row_labels == lab.tokens
        assert lab.tokens[0] == lab.task.meta["vocab"][int(lab.recorder.probe.inputs[0, 0])]
        att = lab.frame("attention")
        assert len(att) == heads * lab.task.meta["seq_len"] ** 2
    finally:
        lab.close()


def test_export_figures_and_tables(lab, tmp_path):
    lab.step(12)
    for view in lab.views:
        page = lab.export(tmp_path / f"{view}.html", view).read_text()
        assert "<html" in page and '<script src="http' not in page
    with pytest.raises(ValueError, match="unknown view 'spectrum'"):
        lab.to_figure("spectrum")
    df = pd.read_csv(lab.export(tmp_path / "h.csv", "metrics"))
    assert set(df.columns) == {"step", "metric", "value"} and df.step.max() == 12
    assert lab.export(tmp_path / "h.parquet", "metrics").stat().st_size > 0
    surface = lab.frame("predictions")
    assert set(surface.columns) == {"x1", "x2", "class", "probability"}


def test_save_writes_a_run_that_loads_and_continues(lab, tmp_path):
    lab.step(12)
    lab.buttons["Save"].click()
    assert lab.last_error is None, lab.status
    lab.step(8)
    path = lab.save()
    run = Run(path)
    assert run.checkpoint_steps == [12, 20] and run.steps == lab.recorder.steps
    expected = {k: v.clone() for k, v in lab.trainer.model.state_dict().items()}
    opt_state = lab.trainer.optimizer.state_dict()["state"]
    again = TrainingLab.load(path)
    try:
        t = again.trainer
        assert t.global_step == 20 and len(t.history) == 20 and again.recorder.steps[-1] == 20
        got = t.model.state_dict()
        assert all(torch.equal(got[k], expected[k]) for k in expected)
        loaded = t.optimizer.state_dict()["state"]
        assert all(torch.equal(loaded[0][k], opt_state[0][k]) for k in ("exp_avg", "exp_avg_sq"))
        assert again.controls["width"].value == 8 and again.controls["n"].value == 200
        again.step(5)
        assert t.global_step == 25 and t.history[-1]["step"] == 25
        lab.step(5)  # the lab that never stopped: the loaded one continues exactly like it
        assert [h["loss"] for h in t.history[-5:]] == [h["loss"] for h in lab.trainer.history[-5:]]
        twin = lab.trainer.model.state_dict()
        assert all(torch.equal(v, twin[k]) for k, v in t.model.state_dict().items())
        again.save()
        assert Run(path).checkpoint_steps == [12, 20, 25]
    finally:
        again.close()


def test_a_lab_loaded_mid_epoch_takes_the_very_batches_the_saved_one_takes(tmp_path):
    """The `lab` fixture trains full batch, where any load continues alike; with minibatches
    a load must continue the batch order and generators (Trainer.resume_state), not reshuffle."""
    lab = TrainingLab("moons", task_kwargs={"n": 200}, model={"depth": 2, "width": 8},
                      train={"batch_size": 32}, out_dir=tmp_path)  # fmt: skip
    try:
        lab.step(7)  # 150 training samples in batches of 32: stopped inside the second epoch
        path = lab.save()
        lab.step(6)
        again = TrainingLab.load(path)
        try:
            again.step(6)
            losses = [h["loss"] for h in again.trainer.history[7:]]
            assert losses == [h["loss"] for h in lab.trainer.history[7:]]
        finally:
            again.close()
    finally:
        lab.close()


def test_your_own_module_and_data(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 3)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
    with pytest.raises(ValueError, match=r"labels go up to 1 .* gives 1 output"):
        TrainingLab(model=torch.nn.Linear(3, 1), data=(x, y))
    with pytest.raises(ValueError, match=r"cannot take the task's inputs of shape \(n, 3\)"):
        TrainingLab(model=torch.nn.Linear(4, 2), data=(x, y))
    net = torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
    lab = TrainingLab(model=net, data=(x, y), out_dir=tmp_path)
    try:
        assert (
            lab.controls["task"].value == "data" and lab.controls["family"].layout.display == "none"
        )
        lab.step(80)
        assert lab.trainer.evaluate()["test_acc"] > 0.9
        path = lab.save()
    finally:
        lab.close()
    with pytest.raises(ValueError, match="pass the model"):
        TrainingLab.load(path)
    again = TrainingLab.load(
        path,
        model=torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2)),
    )
    try:
        assert again.trainer.global_step == 80 and again.trainer.evaluate()["test_acc"] > 0.9
    finally:
        again.close()


def test_regression_from_a_dataframe_and_a_csv(tmp_path):
    rng = np.random.default_rng(1)
    df = pd.DataFrame(rng.normal(size=(200, 3)), columns=["a", "b", "c"])
    df["y"] = 2.0 * df.a - df.b
    lab = TrainingLab(model=torch.nn.Linear(2, 1), data=df, features=["a", "b"], target="y",
                      train={"lr": 0.05}, out_dir=tmp_path)  # fmt: skip
    try:
        lab.step(150)
        assert lab.task.kind == "regression" and lab.trainer.history[-1]["loss"] < 0.01
    finally:
        lab.close()
    csv = tmp_path / "m.csv"
    df.to_csv(csv, index=False)
    with pytest.raises(ValueError, match=r"outputs \(n, 3\)"):
        TrainingLab(model=torch.nn.Linear(3, 3), data=csv, target="y")
    lab = TrainingLab(model=lambda seed: torch.nn.Linear(3, 1), data=csv, target="y")
    lab.close()
