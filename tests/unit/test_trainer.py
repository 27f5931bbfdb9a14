"""Trainer: learning, determinism, divergence recovery, schedules, validation."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from explorer.errors import ExplorerWarning
from explorer.train import (
    CheckpointError,
    MultiSeedTrainer,
    TrainConfig,
    Trainer,
    TrainingDiverged,
    build_seeded,
    save_checkpoint,
)
from explorer.train.objectives import IGNORE, batch_loss
from explorer.train.optim import lr_at


def xor_task(n: int = 160, seed: int = 0) -> SimpleNamespace:
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, size=(n, 2)).astype(np.float32)
    y = (x[:, 0] * x[:, 1] > 0).astype(np.int64)
    k = n * 3 // 4
    return SimpleNamespace(
        name="xor",
        kind="classification",
        x_train=x[:k],
        y_train=y[:k],
        x_test=x[k:],
        y_test=y[k:],
        meta={"loss": "ce", "n_classes": 2},
    )


def mlp(seed: int | None = None) -> nn.Module:
    return nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 2))


def params_of(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def test_loss_falls_and_accuracy_rises():
    t = Trainer(mlp, xor_task(), lr=0.05)
    hist = list(t.run(200))
    assert hist[-1]["train_loss"] < 0.5 * hist[0]["train_loss"]
    assert hist[-1]["test_acc"] > 0.85
    assert t.global_step == 200 and len(t.history) == 200
    assert [h["step"] for h in hist[:3]] == [1, 2, 3]


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw"])
def test_every_optimizer_trains(optimizer):
    lr = 0.5 if optimizer == "sgd" else 0.05
    t = Trainer(mlp, xor_task(), optimizer=optimizer, lr=lr, weight_decay=1e-4)
    first = t.step()["loss"]
    for _ in t.run(100):
        pass
    assert t.history[-1]["loss"] < first


@pytest.mark.parametrize("batch_size", [None, 16])
def test_same_seed_same_run_different_seed_different_run(batch_size):
    def losses(seed: int) -> list[float]:
        t = Trainer(mlp, xor_task(), lr=0.05, seed=seed, batch_size=batch_size)
        return [m["loss"] for m in t.run(30)]

    assert losses(3) == losses(3)
    assert losses(3) != losses(4)


def test_factory_taking_seed_gets_the_seed():
    seen = []

    def factory(seed: int) -> nn.Module:
        seen.append(seed)
        return mlp()

    Trainer(factory, xor_task(), seed=7)
    assert seen == [7]
    a, b = build_seeded(mlp, 1), build_seeded(mlp, 1)
    assert torch.equal(params_of(a), params_of(b))
    assert not torch.equal(params_of(a), params_of(build_seeded(mlp, 2)))


def test_build_seeded_leaves_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    build_seeded(mlp, 5)
    assert torch.equal(torch.rand(3), expected)


def test_minibatches_cover_each_epoch_exactly_once():
    task = xor_task(n=80)  # 60 training samples
    t = Trainer(mlp, task, batch_size=20)
    seen = []
    for _ in range(3):
        x, _ = t._next_batch()
        seen.append(x)
    rows = {tuple(r.tolist()) for r in torch.cat(seen)}
    assert len(rows) == 60


def test_reset_restores_initial_weights_for_module_and_factory():
    model = mlp()
    start = params_of(model).clone()
    t = Trainer(model, xor_task(), lr=0.05)
    for _ in t.run(5):
        pass
    assert not torch.equal(params_of(t.model), start)
    t.reset()
    assert torch.equal(params_of(t.model), start) and t.global_step == 0 and t.history == []
    t2 = Trainer(mlp, xor_task())
    w0 = params_of(t2.model).clone()
    t2.step()
    t2.reset()
    assert torch.equal(params_of(t2.model), w0)


def relu_mlp(seed: int | None = None) -> nn.Module:
    return nn.Sequential(
        nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 2)
    )


def test_divergence_restores_last_good_state_and_can_continue():
    task = xor_task()
    t = Trainer(relu_mlp, task, optimizer="sgd", lr=1e6)
    with pytest.raises(TrainingDiverged) as info:
        for _ in t.run(200):
            pass
    err = info.value
    assert err.restored_step == t.global_step == err.step - 1
    assert "lower the learning rate" in t.diverged
    assert all(torch.isfinite(p).all() for p in t.model.parameters())
    # the restored weights are exactly those after `restored_step` clean steps
    ref = Trainer(relu_mlp, task, optimizer="sgd", lr=1e6)
    for _ in ref.run(err.restored_step):
        pass
    assert torch.equal(params_of(t.model), params_of(ref.model))
    assert len(t.history) == err.restored_step
    # lowering the learning rate lets training go on from there
    t.config = t.config.with_(lr=0.05)
    m = t.step()
    assert math.isfinite(m["loss"]) and t.diverged is None


class _SqrtAtZero(nn.Module):
    """Finite loss, NaN gradient: d/dw of w * sqrt(0) is 0 * inf."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.ones(2))
        self.v = nn.Parameter(torch.zeros(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w * x[:, :2] + torch.sqrt(self.v.abs()) * 0.0


def test_non_finite_gradient_is_caught_before_the_update():
    t = Trainer(
        _SqrtAtZero(),
        SimpleNamespace(
            name="r",
            kind="regression",
            x_train=np.ones((4, 2), np.float32),
            y_train=np.zeros((4, 2), np.float32),
            x_test=np.ones((2, 2), np.float32),
            y_test=np.zeros((2, 2), np.float32),
            meta={},
        ),
    )
    before = params_of(t.model).clone()
    with pytest.raises(TrainingDiverged, match="gradient"):
        t.step()
    assert torch.equal(params_of(t.model), before) and t.global_step == 0


def test_grad_clip_bounds_the_sgd_update():
    t = Trainer(mlp, xor_task(), optimizer="sgd", momentum=0.0, lr=1.0, grad_clip=1e-3)
    before = params_of(t.model).clone()
    m = t.step()
    assert m["grad_norm"] > 1e-3  # the reported norm is before clipping
    assert float((params_of(t.model) - before).norm()) <= 1e-3 * (1 + 1e-4)


@pytest.mark.parametrize(
    ("schedule", "step", "expected"),
    [
        ("constant", 50, 1.0),
        ("cosine", 0, 1.0),
        ("cosine", 50, 0.5),
        ("cosine", 100, 0.0),
        ("linear", 25, 0.75),
        ("step", 49, 1.0),
        ("step", 50, 0.1),
        ("step", 80, 0.01),
    ],
)
def test_schedules(schedule, step, expected):
    cfg = TrainConfig(lr=1.0, schedule=schedule, total_steps=100)
    assert lr_at(step, cfg) == pytest.approx(expected, abs=1e-12)


def test_warmup_ramps_linearly():
    cfg = TrainConfig(lr=2.0, warmup_steps=4, schedule="cosine", total_steps=104)
    assert [lr_at(s, cfg) for s in range(4)] == pytest.approx([0.5, 1.0, 1.5, 2.0])
    assert lr_at(4, cfg) == pytest.approx(2.0) and lr_at(54, cfg) == pytest.approx(1.0)


@settings(max_examples=50, deadline=None)
@given(
    st.integers(0, 10_000),
    st.sampled_from(["constant", "cosine", "linear", "step"]),
    st.integers(1, 1000),
    st.integers(0, 50),
    st.floats(1e-6, 10.0),
)
def test_lr_never_leaves_zero_to_base(step, schedule, total, warmup, lr):
    cfg = TrainConfig(lr=lr, schedule=schedule, total_steps=total, warmup_steps=warmup)
    assert 0.0 <= lr_at(step, cfg) <= lr * (1 + 1e-12)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"optimizer": "rmsprop"}, "optimizer"),
        ({"lr": 0.0}, "lr"),
        ({"lr": float("nan")}, "lr"),
        ({"batch_size": 0}, "batch_size"),
        ({"schedule": "exp"}, "schedule"),
        ({"loss": "l1"}, "loss"),
        ({"grad_clip": -1.0}, "grad_clip"),
        ({"eval_every": 0}, "eval_every"),
        ({"momentum": 1.0}, "momentum"),
        ({"seed": -1}, "seed"),
        ({"weight_decay": -0.1}, "weight_decay"),
        ({"eval_samples": 0}, "eval_samples"),
    ],
)
def test_bad_config_is_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**kwargs)


def test_bad_tasks_are_rejected():
    task = xor_task()
    task.y_train = task.y_train[:-1]
    with pytest.raises(ValueError, match="samples"):
        Trainer(mlp, task)
    task = xor_task()
    task.x_train = task.x_train.copy()
    task.x_train[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        Trainer(mlp, task)
    task = xor_task()
    task.y_train = task.y_train.astype(np.float32) + 0.5
    with pytest.raises(ValueError, match="integer class"):
        Trainer(mlp, task)
    with pytest.raises(TypeError, match=r"nn\.Module"):
        Trainer(42, xor_task())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n must be"):
        next(Trainer(mlp, xor_task()).run(-1))


def test_sequence_loss_and_accuracy_ignore_unscored_positions():
    torch.manual_seed(0)
    logits = torch.randn(3, 5, 7)
    y = torch.randint(0, 7, (3, 5))
    y[:, :2] = IGNORE
    loss, acc = batch_loss(logits, y, "ce")
    keep = y != IGNORE
    ref = torch.nn.functional.cross_entropy(logits[keep], y[keep])
    assert float(loss) == pytest.approx(float(ref), rel=1e-6)
    assert float(acc) == pytest.approx(float((logits[keep].argmax(-1) == y[keep]).float().mean()))
    with pytest.raises(ValueError, match="logits"):
        batch_loss(torch.randn(3, 7), y, "ce")


def test_run_stops_on_request_and_history_is_tidy():
    t = Trainer(mlp, xor_task(), eval_every=2)
    calls = iter([False, False, True])
    out = list(t.run(10, should_stop=lambda: next(calls)))
    assert len(out) == 2
    df = t.history_frame()
    assert list(df.columns) == ["step", "metric", "value"]
    assert set(df.metric) >= {"loss", "train_loss", "test_acc", "lr", "grad_norm"}
    assert (df[df.metric == "test_acc"].step == [1, 2]).all()


# ---------------------------------------------------------------- divergence you can recover from


def _train_loss(t: Trainer) -> float:
    with torch.no_grad():
        return float(batch_loss(t.model(t.data["x_train"]), t.data["y_train"], "ce")[0])


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_explosion_at_lr_1e3_stops_keeps_a_good_state_and_lower_lr_continues(optimizer):
    task = xor_task()
    t = Trainer(relu_mlp, task, optimizer=optimizer, lr=1e3)
    first = _train_loss(t)
    with pytest.raises(TrainingDiverged, match=r"exploded|became") as info:
        for _ in t.run(50):
            pass
    assert info.value.step <= 10 and info.value.restored  # caught within a few steps
    restored = _train_loss(t)
    assert restored <= 2 * first  # a state that was actually good, not loss 1e21
    t.config = t.config.with_(lr=1e-2)  # lower the learning rate, then continue
    losses = [m["loss"] for m in t.run(150)]
    assert all(math.isfinite(v) for v in losses) and t.diverged is None
    assert np.mean(losses[-10:]) < restored


class _NaNOnce(nn.Module):
    """Fine weights, but the forward pass of one training call gives NaN (a bad batch)."""

    def __init__(self, at: int) -> None:
        super().__init__()
        self.net, self.calls, self.at = mlp(), 0, at

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        if self.training:
            self.calls += 1
            if self.calls == self.at:
                out = out * float("nan")
        return out


def test_a_nan_loss_from_one_batch_keeps_the_last_good_update():
    t = Trainer(_NaNOnce(at=5), xor_task(), lr=1e-2)
    for _ in t.run(4):
        pass
    before = params_of(t.model).clone()
    with pytest.raises(TrainingDiverged, match="kept") as info:
        t.step()
    assert not info.value.restored and info.value.restored_step == 4 == t.global_step
    assert torch.equal(params_of(t.model), before) and len(t.history) == 4
    assert math.isfinite(t.step()["loss"])  # and training goes on


class _NaNInit(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(2, 2)
        with torch.no_grad():
            self.lin.weight[0, 0] = float("nan")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x)


def test_nan_at_step_0_does_not_report_a_restore_that_did_not_happen():
    with pytest.raises(TrainingDiverged, match="nothing to restore") as info:
        Trainer(_NaNInit(), xor_task()).step()
    assert not info.value.restored and info.value.step == info.value.restored_step == 0
    assert "Restored" not in info.value.reason


class _ScaleGrad(torch.autograd.Function):
    """Identity forward; the backward pass multiplies the gradient by ``factor``."""

    @staticmethod
    def forward(ctx, x, factor):  # type: ignore[no-untyped-def,override]
        ctx.factor = factor
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[no-untyped-def,override]
        return grad * ctx.factor, None


class _GradSchedule(nn.Module):
    """mlp() whose gradients are scaled by ``factors[call]`` (1 elsewhere): spikes on demand,
    with the loss untouched."""

    def __init__(self, factors: dict[int, float], default: float = 1.0) -> None:
        super().__init__()
        self.net, self.calls, self.factors, self.default = mlp(), 0, factors, default

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.calls += 1
            x = _ScaleGrad.apply(x, 1.0)  # keeps x's gradient out of it
            out = self.net(x)
            return _ScaleGrad.apply(out, self.factors.get(self.calls, self.default))
        return self.net(x)


def test_gradient_spike_stops_without_clipping_and_thresholds_are_configurable():
    task = xor_task()
    t = Trainer(_GradSchedule({15: 1e4}), task, optimizer="sgd", lr=1e-2)
    with pytest.raises(TrainingDiverged, match="spiked") as info:
        for _ in t.run(30):
            pass
    assert info.value.step == 14 and t.global_step == 14
    # with clipping the update is bounded: no spike check; a looser threshold lets it pass
    for options in ({"grad_clip": 1.0}, {"explode_grad": 1e5}, {"explode_grad": None}):
        quiet = Trainer(_GradSchedule({15: 1e4}), task, optimizer="sgd", lr=1e-2, **options)
        assert len(list(quiet.run(30))) == 30
    # near a perfect fit gradients are tiny: a 1e4× jump that stays below the first step's
    # norm is no spike (a separable task at Adam lr 0.03 used to stop here)
    tiny = _GradSchedule({15: 1e-5}, default=1e-9)
    tiny.factors[1] = 1.0
    assert len(list(Trainer(tiny, task, optimizer="sgd", lr=1e-2).run(30))) == 30
    off = Trainer(relu_mlp, task, optimizer="sgd", lr=1e6, explode_loss=None, explode_grad=None)
    with pytest.raises(TrainingDiverged, match="became"):  # non-finite always stops
        for _ in off.run(100):
            pass


def test_the_trainer_copies_the_data_it_validated():
    task = xor_task()
    t = Trainer(mlp, task)
    task.x_train[:] = np.nan  # edited in place after validation: the trainer does not see it
    task.y_train[:] = 7
    assert torch.isfinite(t.data["x_train"]).all() and int(t.data["y_train"].max()) == 1
    assert math.isfinite(t.step()["loss"])


def test_labels_and_output_width_are_checked_before_training():
    task = xor_task()
    task.y_train = task.y_train.copy()
    task.y_train[0] = 5
    with pytest.raises(
        ValueError, match=r"y_train: labels go up to 5 \(6 classes\) but the model gives 2 output"
    ):
        Trainer(mlp, task)
    task.y_train[0] = -3
    with pytest.raises(ValueError, match="negative class ids"):
        Trainer(mlp, task)
    reg = SimpleNamespace(
        name="r", kind="regression", meta={},
        x_train=np.zeros((8, 2), np.float32), y_train=np.zeros((8, 3), np.float32),
        x_test=np.zeros((2, 2), np.float32), y_test=np.zeros((2, 3), np.float32),
    )  # fmt: skip
    with pytest.raises(
        ValueError, match=r"targets have shape \(n, 3\) but the model outputs \(n, 2\)"
    ):
        Trainer(mlp, reg)
    with pytest.raises(TypeError, match="real numbers"):
        Trainer(mlp, SimpleNamespace(**{**xor_task().__dict__, "x_train": xor_task().x_train + 1j}))
    narrow = nn.Sequential(nn.Linear(5, 2))
    narrow.train()
    with pytest.raises(ValueError, match=r"cannot take the task's inputs of shape \(n, 2\)"):
        Trainer(narrow, xor_task())
    assert narrow.training  # its mode put back


def test_config_changes_apply_to_the_live_run():
    t = Trainer(mlp, xor_task(), optimizer="sgd", lr=0.1, momentum=0.5)
    t.step()
    t.config = t.config.with_(weight_decay=0.25, momentum=0.0, lr=0.01)
    assert t.optimizer.param_groups[0]["weight_decay"] == 0.25
    assert t.optimizer.param_groups[0]["momentum"] == 0.0 and t.step()["lr"] == 0.01
    with pytest.raises(ValueError, match="optimizer cannot change"):
        t.config = t.config.with_(optimizer="adam")
    for bad in ({"lr": True}, {"explode_loss": 1.0}, {"explode_window": 0}, {"momentum": "x"}):
        with pytest.raises((TypeError, ValueError)):
            TrainConfig(**bad)


def dropout_mlp(seed: int | None = None) -> nn.Module:
    return nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Dropout(0.2), nn.Linear(16, 2))


def _losses(rows: list[dict[str, float]]) -> list[tuple[int, float]]:
    return [(int(r["step"]), r["loss"]) for r in rows]


def test_save_then_restore_continues_exactly_as_if_never_stopped(tmp_path):
    config = TrainConfig(optimizer="adam", lr=1e-2, batch_size=16, seed=3)
    a = Trainer(dropout_mlp, xor_task(), config)
    list(a.run(25))  # 120 samples in batches of 16: stopped in the middle of an epoch
    path = a.save(tmp_path / "run.safetensors")
    later = list(a.run(15))
    b = Trainer(dropout_mlp, xor_task(), config)
    list(b.run(7))  # a trainer with a life of its own: all of it is replaced
    b.restore(path)
    assert b.global_step == 25 and _losses(b.history) == _losses(a.history[:25])
    assert _losses(list(b.run(15))) == _losses(later)  # same batches, dropout masks, updates
    assert torch.equal(params_of(a.model), params_of(b.model))


def _trainer_state(t: Trainer) -> tuple:
    opt = t.optimizer.state_dict()
    tensors = [v.clone() for s in opt["state"].values() for v in s.values() if torch.is_tensor(v)]
    return (
        params_of(t.model).clone(), tensors, repr(opt["param_groups"]), t.global_step,
        _losses(t.history), t._cursor, t._batch_gen.get_state().clone(),
    )  # fmt: skip


def _same(a: tuple, b: tuple) -> bool:
    def equal(x, y) -> bool:
        if torch.is_tensor(x):
            return torch.equal(x, y)
        if isinstance(x, list) and x and torch.is_tensor(x[0]):
            return len(x) == len(y) and all(map(torch.equal, x, y))
        return x == y

    return all(map(equal, a, b))


def test_a_failed_restore_leaves_model_optimizer_and_trainer_as_they_were(tmp_path):
    config = TrainConfig(optimizer="adam", lr=1e-2, batch_size=16)
    t, twin = Trainer(mlp, xor_task(), config), Trainer(mlp, xor_task(), config)
    list(t.run(10))
    list(twin.run(10))
    good = Trainer(mlp, xor_task(), config)
    list(good.run(4))
    state = good.resume_state()
    files = {}
    for name, st_ in [
        ("order", {**state, "trainer": {**state["trainer"], "order": "x"}}),
        ("perm", {**state, "trainer": {**state["trainer"], "order": [0] * good.n_train}}),
        ("rng", {**state, "trainer": {**state["trainer"], "batch_generator": "%%"}}),
        ("window", {**state, "trainer": {**state["trainer"], "losses": [[1, "a"]]}}),
        ("step", {**state, "step": -1}),
        ("history", {**state, "history": [{"loss": 1.0}]}),
    ]:
        files[name] = save_checkpoint(tmp_path / f"{name}.safetensors", good.model,
                                      optimizer=good.optimizer, state=st_)  # fmt: skip
    sgd = Trainer(mlp, xor_task(), config.with_(optimizer="sgd"))
    files["sgd"] = sgd.save(tmp_path / "sgd.safetensors")
    wide = Trainer(lambda: nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 2)), xor_task())
    files["arch"] = wide.save(tmp_path / "arch.safetensors")
    before = _trainer_state(t)
    for name, path in files.items():
        with pytest.raises(CheckpointError):
            t.restore(path)
        assert _same(_trainer_state(t), before), name
    with pytest.raises(FileNotFoundError):
        t.restore(tmp_path / "missing.safetensors")
    with pytest.raises(TypeError, match="history"):
        t.restore(good.save(tmp_path / "good.safetensors"), history=[{"loss": 1.0}])
    assert _same(_trainer_state(t), before)
    assert _losses(list(t.run(5))) == _losses(list(twin.run(5)))  # still steps like its twin
    assert torch.equal(params_of(t.model), params_of(twin.model))


def test_restore_reseeds_the_good_state_and_takes_a_run_directorys_history(tmp_path):
    t = Trainer(mlp, xor_task(), optimizer="sgd", lr=0.1)
    list(t.run(10))
    # as a run directory writes it: weights, optimizer and the step; the history kept apart
    path = save_checkpoint(tmp_path / "c.safetensors", t.model, optimizer=t.optimizer,
                           state={"step": 10})  # fmt: skip
    kept = params_of(t.model).clone()
    rows = [{**r, "step": float(r["step"])} for r in t.history]  # as read back from parquet
    list(t.run(20))
    t.restore(path, history=rows)
    assert t.global_step == 10 and _losses(t.history) == _losses(rows)
    with torch.no_grad():  # the next step fails: the state put back is the restored one,
        t.model[0].weight.fill_(float("nan"))  # not one from the 30 steps before the restore
    with pytest.raises(TrainingDiverged) as info:
        t.step()
    assert info.value.restored and info.value.restored_step == 10
    assert torch.equal(params_of(t.model), kept)
    assert math.isfinite(t.step()["loss"])


def test_restoring_onto_other_training_data_warns_and_starts_a_fresh_shuffle(tmp_path):
    a = Trainer(mlp, xor_task(), batch_size=16)
    list(a.run(3))
    path = a.save(tmp_path / "a.safetensors")
    b = Trainer(mlp, xor_task(n=200), batch_size=16)
    with pytest.warns(ExplorerWarning, match="fresh shuffle"):
        b.restore(path)
    assert b.global_step == 3 and math.isfinite(b.step()["loss"])


class _Flaky(nn.Module):
    """An MLP whose forward raises while ``fail`` is set (a user's module with a bug)."""

    def __init__(self) -> None:
        super().__init__()
        self.net, self.fail = mlp(), False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fail and self.training:
            raise RuntimeError("boom")
        return self.net(x)


def test_a_step_that_raises_consumes_no_batch_and_changes_nothing():
    t, twin = (Trainer(lambda: _Flaky(), xor_task(), batch_size=16) for _ in range(2))
    list(t.run(3))
    list(twin.run(3))
    t.model.fail = True
    for _ in range(2):
        with pytest.raises(RuntimeError, match="boom"):
            t.step()
    assert t.global_step == 3 and len(t.history) == 3
    t.model.fail = False
    assert _losses(list(t.run(9))) == _losses(list(twin.run(9)))  # same batches from here on
    assert torch.equal(params_of(t.model), params_of(twin.model))


def test_a_test_split_the_model_cannot_take_is_refused_before_training():
    task = xor_task()
    task.x_test = np.zeros((len(task.y_test), 3), np.float32)  # evaluation would fail at step 1
    with pytest.raises(ValueError, match=r"inputs of shape \(n, 3\)"):
        Trainer(mlp, task)


@pytest.mark.parametrize("seeds", [[1.5], [True], ["1"], [-1], [0, 0], []])
def test_multi_seed_trainer_refuses_seeds_that_are_not_distinct_integers(seeds):
    with pytest.raises(ValueError, match="seeds must"):  # 1.5 and True were truncated to 1
        MultiSeedTrainer(mlp, xor_task(), seeds=seeds)
