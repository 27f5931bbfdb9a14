"""A training stepper: ``step()`` and ``run(n)`` yield metric dicts; nothing is printed.

Deterministic given ``config.seed`` (model built from a factory under that seed, minibatch
order and dropout from the trainer's own generators).

Divergence you can recover from: a step stops with :class:`TrainingDiverged` when the loss or
the gradient norm is NaN/inf, when the loss explodes (above ``config.explode_loss`` × the
larger of the first loss and the largest of the last ``explode_window`` accepted losses) or the
gradient norm spikes (above ``config.explode_grad`` × the median of the last ``explode_window``
norms and above its first value — a tiny gradient near a perfect fit is no spike; not checked
when ``grad_clip`` bounds the update). Before raising it puts back the last
state that was actually good — weights, buffers and optimizer state of the last step whose loss
stayed within the recent range — so "lower the learning rate, then continue" works:
``trainer.config = trainer.config.with_(lr=...)`` then ``trainer.step()``. A bad loss on one
batch from weights that are still fine on the previous batch keeps those weights (the batch is
at fault, not the last update).
"""

from __future__ import annotations

import base64
import copy
import inspect
import os
import statistics
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from explorer.device import as_torch, resolve_device
from explorer.errors import ExplorerWarning
from explorer.frames import tidy
from explorer.modes import eval_mode
from explorer.train.checkpoint import Checkpoint, CheckpointError, load_checkpoint, save_checkpoint
from explorer.train.config import TaskLike, TrainConfig
from explorer.train.objectives import IGNORE, batch_loss, resolve_loss
from explorer.train.optim import build_optimizer, lr_at, set_lr
from explorer.train.state import GoodState, TrainingDiverged, all_finite
from explorer.validation import check_array, check_model_outputs

__all__ = ["ModelSource", "Trainer", "build_seeded", "task_tensors"]

ModelFactory = Callable[[], nn.Module] | Callable[[int], nn.Module]
ModelSource = nn.Module | ModelFactory


def _takes_seed(factory: Callable[..., Any]) -> bool:
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return False
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return any(p.kind in positional and p.default is p.empty for p in params)


def build_seeded(factory: ModelFactory, seed: int) -> nn.Module:
    """Build a model for ``seed``: ``factory(seed)`` if it takes an argument (e.g.
    ``lambda s: MLP(MLPConfig(seed=s))``), else ``factory()`` with torch's CPU generator seeded
    by ``seed``. The global random state is left as it was; the same seed gives the same
    initial weights."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = factory(seed) if _takes_seed(factory) else factory()  # type: ignore[call-arg]
    if not isinstance(model, nn.Module):
        raise TypeError(
            f"the model factory must return a torch.nn.Module, got {type(model).__name__}"
        )
    return model


def _as_input(x: Any, device: torch.device, name: str = "x") -> torch.Tensor:
    t = as_torch(check_array(x, name, finite=False), device=device)
    if t.is_floating_point():
        return t.float()
    return t.long()


def _as_target(y: Any, device: torch.device, loss: str, name: str = "y") -> torch.Tensor:
    t = as_torch(check_array(y, name, finite=False), device=device)
    if loss == "ce":
        if t.is_floating_point():
            if not torch.equal(t, t.round()):
                raise ValueError(
                    "cross-entropy targets must be integer class ids; got fractional values"
                )
        return t.long()
    return t.float()


def task_tensors(task: TaskLike, device: torch.device, loss: str) -> dict[str, torch.Tensor]:
    """The task's splits as tensors on ``device``: inputs float32 (or int64 tokens), targets
    int64 for cross-entropy and float32 for MSE. Validates dtypes, sizes and finiteness, and
    copies: editing the task's arrays later cannot reach the validated tensors."""
    for attr in ("x_train", "y_train", "x_test", "y_test"):
        if not hasattr(task, attr):
            raise TypeError(f"task must have x_train, y_train, x_test, y_test; {attr} is missing")
    out = {
        "x_train": _as_input(task.x_train, device, "x_train"),
        "y_train": _as_target(task.y_train, device, loss, "y_train"),
        "x_test": _as_input(task.x_test, device, "x_test"),
        "y_test": _as_target(task.y_test, device, loss, "y_test"),
    }
    out = {k: v.clone() for k, v in out.items()}  # never a view of the caller's arrays
    for split in ("train", "test"):
        x, y = out[f"x_{split}"], out[f"y_{split}"]
        if len(x) != len(y):
            raise ValueError(f"x_{split} has {len(x)} samples but y_{split} has {len(y)}")
        if x.is_floating_point() and not bool(torch.isfinite(x).all()):
            raise ValueError(f"x_{split} contains NaN or inf; clean the data before training")
        if y.is_floating_point() and not bool(torch.isfinite(y).all()):
            raise ValueError(f"y_{split} contains NaN or inf; clean the data before training")
    if len(out["x_train"]) == 0:
        raise ValueError("the task has no training samples")
    if loss == "ce":
        for split in ("train", "test"):
            y = out[f"y_{split}"]
            bad = (y < 0) & (y != IGNORE)
            if bool(bad.any()):
                raise ValueError(
                    f"y_{split} holds negative class ids (e.g. {int(y[bad][0])}); classes are "
                    f"0 … C−1 ({IGNORE} marks targets to ignore)"
                )
    return out


def _encode(state: torch.Tensor) -> str:
    return base64.b64encode(state.numpy().tobytes()).decode("ascii")


def _decode(text: Any) -> torch.Tensor:
    if not isinstance(text, str):
        raise TypeError(f"expected base64 text, got {type(text).__name__}")
    return torch.frombuffer(bytearray(base64.b64decode(text, validate=True)), dtype=torch.uint8)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_real(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


def _metric_rows(rows: Any) -> list[dict[str, float]] | None:
    """Copies of metric dicts (names → numbers, an integral ``step`` made int), or None."""
    if not isinstance(rows, list):
        return None
    out = []
    for row in rows:
        if not (
            isinstance(row, dict)
            and all(isinstance(k, str) and _is_real(v) for k, v in row.items())
            and _is_real(row.get("step"))
            and float(row["step"]).is_integer()
        ):
            return None
        out.append({**{k: float(v) for k, v in row.items()}, "step": int(row["step"])})
    return out


def _uses_dropout(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0 for m in model.modules())


class Trainer:
    """Train ``model`` on ``task`` one step at a time.

    ``model``: an ``nn.Module`` or a factory (preferred: built by :func:`build_seeded` under
    ``config.seed``, so runs are reproducible and :meth:`reset` rebuilds it). Keyword
    ``overrides`` replace fields of ``config`` (``Trainer(model, task, lr=1e-3)``).

    Attributes: ``model``, ``optimizer``, ``config`` (assign a changed copy to retune a live
    run: lr, weight decay, momentum, clipping, batch size, schedule and the divergence
    thresholds apply from the next step), ``global_step`` (updates applied), ``history`` (one
    metric dict per step), ``diverged`` (reason string or None). The task's data is validated
    and copied; the model's output width is checked against the labels before training.
    :meth:`save` / :meth:`restore` checkpoint the run and continue it exactly (all or nothing).
    """

    def __init__(
        self,
        model: ModelSource,
        task: TaskLike,
        config: TrainConfig | None = None,
        **overrides: Any,
    ) -> None:
        config = config or TrainConfig()
        if not isinstance(config, TrainConfig):
            raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
        self._config = config.with_(**overrides) if overrides else config
        self.task = task
        self.device = resolve_device(self.config.device)
        self.loss_name = resolve_loss(task, self.config.loss)
        self.data = task_tensors(task, self.device, self.loss_name)
        self._source = model
        self._initial_state: dict[str, torch.Tensor] | None = None
        if isinstance(model, nn.Module):
            self._initial_state = copy.deepcopy(model.state_dict())
        elif not callable(model):
            raise TypeError(
                f"model must be a torch.nn.Module or a model factory, got {type(model).__name__}"
            )
        self.reset()

    # ------------------------------------------------------------------ state
    def reset(self) -> None:
        """Back to step 0: initial weights, fresh optimizer, same seed, empty history."""
        if isinstance(self._source, nn.Module):
            model = self._source
            assert self._initial_state is not None
            model.load_state_dict(self._initial_state)
        else:
            model = build_seeded(self._source, self.config.seed)
        self.model = model.to(self.device)
        self._params = [p for p in self.model.parameters() if p.requires_grad]
        if not self._params:
            raise ValueError("the model has no trainable parameters")
        for split in ("train", "test"):  # the test split too: evaluation must not fail later
            if len(self.data[f"x_{split}"]):
                check_model_outputs(
                    self.model, self.data[f"x_{split}"], {f"y_{split}": self.data[f"y_{split}"]},
                    self.loss_name, ignore=IGNORE,
                )  # fmt: skip
        self.optimizer = build_optimizer(list(self.model.parameters()), self.config)
        self._good = GoodState(self.model, self.optimizer)
        window = self.config.explode_window
        self._losses: deque[tuple[int, float]] = deque(maxlen=window)  # (step, accepted loss)
        self._grads: deque[tuple[int, float]] = deque(maxlen=window)
        self._first_loss: float | None = None
        self._first_grad: float | None = None
        self._last_batch: tuple[torch.Tensor, torch.Tensor] | None = None
        self._batch_gen = torch.Generator().manual_seed(self.config.seed)
        self._order = torch.empty(0, dtype=torch.long)
        self._cursor = 0
        self._dropout_rng = (
            torch.Generator().manual_seed(self.config.seed + 1).get_state()
            if _uses_dropout(self.model)
            else None
        )
        self.global_step = 0
        self.history: list[dict[str, float]] = []
        self.diverged: str | None = None

    @property
    def config(self) -> TrainConfig:
        return self._config

    @config.setter
    def config(self, new: TrainConfig) -> None:
        """Retune the live run (``trainer.config = trainer.config.with_(lr=1e-3)``); the
        optimizer, seed, device and loss are fixed for a Trainer's life."""
        if not isinstance(new, TrainConfig):
            raise TypeError(f"config must be a TrainConfig, got {type(new).__name__}")
        fixed = [
            f
            for f in ("optimizer", "seed", "device", "loss")
            if getattr(new, f) != getattr(self._config, f)
        ]
        if fixed:
            raise ValueError(
                f"{', '.join(fixed)} cannot change on a live Trainer: build a new Trainer"
            )
        for group in self.optimizer.param_groups:
            group["weight_decay"] = new.weight_decay
            if "momentum" in group:
                group["momentum"] = new.momentum
        if new.explode_window != self._config.explode_window:
            self._losses = deque(self._losses, maxlen=new.explode_window)
            self._grads = deque(self._grads, maxlen=new.explode_window)
        self._config = new

    @property
    def n_train(self) -> int:
        return len(self.data["x_train"])

    def _next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.data["x_train"], self.data["y_train"]
        bs = self.config.batch_size
        if bs is None or bs >= len(x):
            return x, y
        if self._cursor + bs > len(self._order):
            self._order = torch.randperm(len(x), generator=self._batch_gen)
            self._cursor = 0
        idx = self._order[self._cursor : self._cursor + bs].to(self.device)
        self._cursor += bs
        return x[idx], y[idx]

    # ------------------------------------------------------------------ steps
    def _forward_backward(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        step = self.global_step
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        loss, acc = batch_loss(self.model(x), y, self.loss_name)
        loss_value = float(loss.detach())
        problem = self._loss_problem(loss_value)
        if problem:
            previous = self._last_batch
            if previous is not None and not self._loss_problem(self._eval_loss(*previous)):
                self._diverge(f"{problem} at step {step} on this batch", keep=True)
            self._diverge(f"{problem} at step {step}")
        if not self._losses or loss_value <= max(v for _, v in self._losses):
            self._good.save(step)  # within the recent range: a state to come back to
        loss.backward()
        grads = [p.grad for p in self._params if p.grad is not None]
        clip = self.config.grad_clip if self.config.grad_clip is not None else float("inf")
        grad_norm = float(torch.nn.utils.clip_grad_norm_(self._params, clip))
        problem = self._grad_problem(grad_norm, grads)
        if problem:
            self._diverge(f"{problem} at step {step}")
        lr = lr_at(step, self.config)
        set_lr(self.optimizer, lr)
        self.optimizer.step()
        self._losses.append((step, loss_value))
        self._grads.append((step, grad_norm))
        self._first_loss = loss_value if self._first_loss is None else self._first_loss
        self._first_grad = grad_norm if self._first_grad is None else self._first_grad
        self._last_batch = (x, y)
        metrics = {"step": step + 1, "loss": loss_value, "lr": lr, "grad_norm": grad_norm}
        if acc is not None:
            metrics["acc"] = float(acc)
        return metrics

    def _loss_problem(self, value: float) -> str | None:
        """Why a loss stops training (non-finite, or exploded), or None."""
        if not np.isfinite(value):
            return f"the training loss became {value}"
        factor = self.config.explode_loss
        if factor is None or not self._losses:
            return None
        assert self._first_loss is not None
        ref = max(self._first_loss, max(v for _, v in self._losses))
        if value > factor * ref:
            return (
                f"the training loss exploded to {value:.3g}, more than {factor:g}× its recent "
                f"maximum {ref:.3g}"
            )
        return None

    def _grad_problem(self, norm: float, grads: list[torch.Tensor]) -> str | None:
        """Why a gradient stops training (non-finite, or a spike), or None."""
        if not np.isfinite(norm) or not all_finite(grads):
            return f"the gradient norm became {norm}"
        factor = self.config.explode_grad
        if factor is None or self.config.grad_clip is not None or len(self._grads) < 10:
            return None
        typical = statistics.median(v for _, v in self._grads)
        assert self._first_grad is not None
        if norm > factor * typical and norm > self._first_grad:
            return (
                f"the gradient norm spiked to {norm:.3g}, more than {factor:g}× its recent "
                f"median {typical:.3g}"
            )
        return None

    @torch.no_grad()
    def _eval_loss(self, x: torch.Tensor, y: torch.Tensor) -> float:
        """The current weights' loss on a batch, in eval mode (no dropout, no RNG used)."""
        with eval_mode(self.model):
            return float(batch_loss(self.model(x), y, self.loss_name)[0])

    def _diverge(self, what: str, *, keep: bool = False) -> None:
        """Stop: keep the current weights (``keep``: the batch, not the weights, is at fault)
        or put back the last good state; then raise :class:`TrainingDiverged`."""
        failed = self.global_step
        self.optimizer.zero_grad(set_to_none=True)
        hint = "lower the learning rate, add gradient clipping or weight decay, then continue"
        if keep:
            restored, note = (
                False,
                (
                    f"The weights after step {failed} give a normal loss on the previous batch, so "
                    "they were kept"
                ),
            )
        elif self._good.step < 0:
            restored, note = (
                False,
                (
                    "The initial weights already fail, so there is nothing to restore: check the "
                    "model, its initialisation and the data"
                ),
            )
        else:
            restored = True
            self.global_step = self._good.restore()
            del self.history[self.global_step :]
            for window in (self._losses, self._grads):
                while window and window[-1][0] >= self.global_step:
                    window.pop()
            note = f"Restored the last good state, from step {self.global_step}"
        self.diverged = f"Diverged: {what}. {note}; {hint}."
        raise TrainingDiverged(self.diverged, failed, self.global_step, restored=restored)

    def step(self) -> dict[str, float]:
        """One optimizer update. Returns ``{"step", "loss", "lr", "grad_norm"[, "acc"]}`` plus
        ``train_loss``/``test_loss`` (and ``train_acc``/``test_acc``) every ``eval_every``
        steps. Raises :class:`TrainingDiverged` after restoring the last good state."""
        t0 = time.perf_counter()
        position = (self._order, self._cursor, self._batch_gen.get_state())
        try:
            x, y = self._next_batch()
            if self._dropout_rng is not None:
                with torch.random.fork_rng(devices=[]):
                    torch.set_rng_state(self._dropout_rng)
                    metrics = self._forward_backward(x, y)
                    self._dropout_rng = torch.get_rng_state()
            else:
                metrics = self._forward_backward(x, y)
        except TrainingDiverged:
            raise
        except BaseException:  # the model raised (or an interrupt) before any update: the
            self._order, self._cursor = position[0], position[1]  # batch is not consumed
            self._batch_gen.set_state(position[2])
            raise
        self.global_step += 1
        self.diverged = None
        if self.global_step % self.config.eval_every == 0 or self.global_step == 1:
            metrics.update(self.evaluate())
        metrics["seconds"] = time.perf_counter() - t0
        self.history.append(metrics)
        return metrics

    def run(
        self, n: int, *, should_stop: Callable[[], bool] | None = None
    ) -> Iterator[dict[str, float]]:
        """Yield the metrics of up to ``n`` steps; stops early when ``should_stop()`` is true."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"n must be an integer >= 0, got {n!r}")
        for _ in range(int(n)):
            if should_stop is not None and should_stop():
                return
            yield self.step()

    # ------------------------------------------------------------------ checkpoints
    def resume_state(self, *, history: bool = True) -> dict[str, Any]:
        """This run's position besides weights and optimizer — ``step``, the batch order and
        cursor, the batch and dropout generators, the divergence windows and (unless
        ``history=False``) the metric ``history`` — as JSON for
        ``save_checkpoint(..., state=trainer.resume_state())``, which :meth:`restore` reads
        to continue exactly as if training had never stopped."""
        position = {
            "n_train": self.n_train,
            "order": self._order.tolist(),
            "cursor": self._cursor,
            "batch_generator": _encode(self._batch_gen.get_state()),
            "dropout_rng": None if self._dropout_rng is None else _encode(self._dropout_rng),
            "losses": [list(v) for v in self._losses],
            "grads": [list(v) for v in self._grads],
            "first_loss": self._first_loss,
            "first_grad": self._first_grad,
        }
        state: dict[str, Any] = {"step": self.global_step, "trainer": position}
        if history:
            state["history"] = self.history
        return state

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Checkpoint the run (weights, optimizer, :meth:`resume_state`) to a ``.safetensors``
        file, atomically; :meth:`restore` continues from it. Returns the path."""
        return save_checkpoint(
            path, self.model, optimizer=self.optimizer, state=self.resume_state()
        )

    def restore(
        self,
        path: str | os.PathLike[str],
        *,
        history: list[dict[str, float]] | None = None,
    ) -> Checkpoint:
        """Continue from the checkpoint at ``path``: its weights and optimizer state go into
        this trainer's model and optimizer, its step (``state["step"]``, else 0) becomes
        ``global_step``, and the batch order, generators and divergence windows continue where
        :meth:`save` (or ``state=trainer.resume_state()``) left them. ``history``: the metric
        history to keep (e.g. a run directory's), else the checkpoint's, else this trainer's
        own up to that step. The last good state becomes the restored one. The file must hold
        optimizer state (written by :meth:`save` or a run directory); to train on from a
        weights-only file, build the Trainer on ``load_checkpoint(path).model`` instead.

        All or nothing: a missing, corrupt or mismatched file (other architecture, optimizer
        class, parameter groups, a malformed state) raises — ``FileNotFoundError`` or
        :class:`CheckpointError` — with the model, optimizer and trainer exactly as before.
        The trainer's ``config`` stays its own (lr, weight decay, momentum apply at the next
        step); a checkpoint of another training set size starts a fresh shuffle, with a
        warning."""
        if history is not None and not isinstance(history, list):
            raise TypeError(f"history must be a list of metric dicts, got {type(history).__name__}")
        weights = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        optimizer = copy.deepcopy(self.optimizer.state_dict())
        try:
            ck = load_checkpoint(path, self.model, optimizer=self.optimizer)
            plan = self._resume_plan(Path(path), ck.state, history)
        except BaseException:
            self.model.load_state_dict(weights)
            self.optimizer.load_state_dict(optimizer)
            raise
        self._apply_resume(plan)
        return ck

    def _resume_plan(
        self, path: Path, state: dict[str, Any], history: list[dict[str, float]] | None
    ) -> dict[str, Any]:
        """The trainer attributes a checkpoint's state describes, checked; nothing applied."""

        def bad(what: str) -> CheckpointError:
            return CheckpointError(f"{path}: the saved training state has {what}")

        step = state.get("step", 0)
        if not _is_int(step) or step < 0:
            raise bad(f"an invalid step {step!r} (an integer >= 0)")
        if history is not None:
            rows = _metric_rows(history)
            if rows is None:
                raise TypeError("history must be a list of dicts of numbers, each with a 'step'")
        elif state.get("history") is not None:
            rows = _metric_rows(state["history"])
            if rows is None:
                raise bad("a history that is not a list of metric dicts")
        else:
            rows = [dict(r) for r in self.history]
        rows = [r for r in rows if r["step"] <= step]
        plan: dict[str, Any] = {"step": step, "history": rows, "position": None}
        position = state.get("trainer")
        if position is None:
            return plan
        if not isinstance(position, dict):
            raise bad("a 'trainer' section that is not a JSON object")
        n = position.get("n_train")
        if not _is_int(n):
            raise bad(f"an invalid n_train {n!r}")
        assert isinstance(n, int)
        order, cursor = position.get("order"), position.get("cursor")
        if not (isinstance(order, list) and all(_is_int(i) for i in order)) or not _is_int(cursor):
            raise bad("a malformed batch order or cursor")
        assert isinstance(cursor, int)
        if order and (sorted(order) != list(range(n)) or not 0 <= cursor <= len(order)):
            raise bad(f"a batch order that is not a permutation of {n} samples")
        windows = []
        for key in ("losses", "grads"):
            window = position.get(key)
            if not isinstance(window, list) or not all(
                isinstance(v, list) and len(v) == 2 and _is_int(v[0]) and _is_real(v[1])
                for v in window
            ):
                raise bad(f"a malformed {key!r} window")
            windows.append([(int(a), float(b)) for a, b in window if a < step])
        firsts = [position.get("first_loss"), position.get("first_grad")]
        if not all(v is None or _is_real(v) for v in firsts):
            raise bad("a malformed first loss or gradient norm")
        try:
            generator = _decode(position.get("batch_generator"))
            torch.Generator().set_state(generator)
            dropout = position.get("dropout_rng")
            dropout = None if dropout is None else _decode(dropout)
        except (TypeError, ValueError, RuntimeError) as err:
            raise bad(f"a malformed generator state ({err})") from err
        if n != self.n_train:
            warnings.warn(
                f"{path} was saved while training on {n} samples, this task has "
                f"{self.n_train}: batches start a fresh shuffle",
                ExplorerWarning,
                stacklevel=3,
            )
            return plan
        plan["position"] = (order, cursor, generator, dropout, windows, firsts)
        return plan

    def _apply_resume(self, plan: dict[str, Any]) -> None:
        self.config = self._config  # the live config, not the saved groups' decay/momentum
        self.global_step = plan["step"]
        self.history = plan["history"]
        self.diverged = None
        self._last_batch = None
        window = self.config.explode_window
        self._losses, self._grads = deque(maxlen=window), deque(maxlen=window)
        self._first_loss = self._first_grad = None
        if plan["position"] is not None:
            order, cursor, generator, dropout, (losses, grads), firsts = plan["position"]
            self._order = torch.tensor(order, dtype=torch.long)
            self._cursor = cursor
            self._batch_gen.set_state(generator)
            if self._dropout_rng is not None and dropout is not None:
                self._dropout_rng = dropout
            self._losses.extend(losses)
            self._grads.extend(grads)
            self._first_loss, self._first_grad = firsts
        else:  # a fresh shuffle from the next batch on
            self._order, self._cursor = torch.empty(0, dtype=torch.long), 0
        self._good = GoodState(self.model, self.optimizer)
        self._good.save(self.global_step)

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def predict(self, x: Any, *, batch_size: int = 8192) -> torch.Tensor:
        """Model outputs for inputs ``x`` (eval mode, no gradients), on the trainer's device.
        ``x`` must be real and finite (a NaN input would give NaN outputs)."""
        xt = _as_input(check_array(x, "x", min_ndim=1), self.device)
        with eval_mode(self.model):
            parts = [self.model(xt[i : i + batch_size]) for i in range(0, len(xt), batch_size)]
        return torch.cat(parts) if parts else torch.empty(0)

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Loss (and accuracy) on the full train and test splits."""
        out: dict[str, float] = {}
        for split in ("train", "test"):
            n = self.config.eval_samples
            x, y = self.data[f"x_{split}"][:n], self.data[f"y_{split}"][:n]
            if len(x) == 0:
                continue
            loss, acc = batch_loss(self.predict(x), y, self.loss_name)
            out[f"{split}_loss"] = float(loss)
            if acc is not None:
                out[f"{split}_acc"] = float(acc)
        return out

    def history_frame(self) -> pd.DataFrame:
        """The metric history as a tidy DataFrame (step, metric, value)."""
        return tidy(
            {"step": int(m["step"]), "metric": k, "value": float(v)}
            for m in self.history
            for k, v in m.items()
            if k != "step"
        )

    def __repr__(self) -> str:
        return (
            f"Trainer({type(self.model).__name__} on {getattr(self.task, 'name', 'task')!r}, "
            f"step={self.global_step}, loss={self.loss_name}, device={self.device})"
        )
