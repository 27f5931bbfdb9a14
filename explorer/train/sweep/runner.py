"""Run the trials of one config: its seeds batched with vmap (:class:`MultiSeedTrainer`), each
seed written to its own run directory, resumed from its last checkpoint when one exists.

Both backends call :func:`run_config` on the same groups of seeds (:meth:`SweepPlan.groups`:
a local worker task, or one Ray Tune trial), so they produce the same numbers. Events go
to ``emit(dict)``: ``{"event": "running" | "progress" | "finished", "trial_id", ...}``.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from typing import Any

import torch
from safetensors.torch import save_file

from explorer.models import capture
from explorer.models.observe import default_layers
from explorer.modes import eval_mode
from explorer.train.config import TaskLike
from explorer.train.recorders import Recorder
from explorer.train.runs import Run, RunWriter
from explorer.train.seeds import MultiSeedTrainer
from explorer.train.state import TrainingDiverged
from explorer.train.sweep.plan import SweepPlan, Trial
from explorer.train.sweep.store import SweepStore, _atomic
from explorer.train.trainer import Trainer

__all__ = ["CHECKPOINT_SECONDS", "Emit", "run_config"]

Emit = Callable[[dict[str, Any]], None]
CHECKPOINT_SECONDS = 10.0  # default: a checkpoint after this much training (see _Schedule)


# ---------------------------------------------------------------------- one trial on disk
class _TrialRun:
    """One trial's trainer (fresh or resumed), run-directory writer and recorder."""

    def __init__(
        self,
        plan: SweepPlan,
        store: SweepStore,
        trial: Trial,
        task: TaskLike,
        factory: Callable[[int], torch.nn.Module],
        resume: int,
    ) -> None:
        self.plan, self.store, self.trial = plan, store, trial
        self.steps = plan.steps_for(trial.config)
        config = plan.train_config(trial.config, trial.seed)
        self.trainer = Trainer(factory, task, config)
        path = store.run_path(trial.trial_id)
        self.recorder = Recorder(self.trainer, every=plan.record_every, probe="auto")
        desc = plan.describe_trial(trial)
        self.writer = RunWriter(
            path,
            model=self.trainer.model,
            task=task,
            config=config,
            name=trial.label(),
            task_spec=desc["task"]["kwargs"] if desc["task"]["source"] == "name" else None,
            params=desc,
            probe=self.recorder.probe,
            exist_ok=True,
        )
        if resume:
            self._resume(Run(path), resume)
        else:
            self.record(history=False)

    def _resume(self, run: Run, step: int) -> None:
        """Continue from the checkpoint at ``step`` (``Trainer.restore``): weights, optimizer,
        step, history, batch order and generators. What a killed worker wrote after ``step`` is dropped first, so a lab
        following the trial never sees those steps twice."""
        self.writer.truncate(step)
        history = [{**row, "step": int(row["step"])} for row in run.history()]
        self.trainer.restore(run.checkpoint_path(step), history=history)

    def update(self, trainer: Trainer) -> None:
        """Follow ``trainer``, now holding this seed's state (after a batched stretch)."""
        self.trainer = trainer
        self.recorder.trainer = trainer

    def record(self, *, history: bool = True) -> None:
        """A snapshot, and the history so far (what a lab following the sweep reads)."""
        self.writer.write_snapshot(self.recorder.record())
        self.recorder.clear()  # the run directory keeps the snapshots; no second copy here
        if history:
            self.writer.write_history(self.trainer.history)
            self.store.update(self.trial.trial_id, step=self.trainer.global_step)

    def checkpoint(self, state: str = "running", message: str = "") -> None:
        """Model, optimizer and ``Trainer.resume_state`` at this step (a resume starts here)."""
        t = self.trainer
        # history first: a checkpoint is the commit point a resume starts from, and the
        # history then always reaches it (rows past it are dropped on resume)
        self.writer.write_history(t.history)
        self.writer.write_checkpoint(
            t.global_step, t.model, t.optimizer, t.resume_state(history=False)
        )
        self.writer.set_status(state, t.global_step, message)
        self.store.update(self.trial.trial_id, step=t.global_step)

    @torch.no_grad()
    def finish(self) -> dict[str, float]:
        """Final checkpoint, snapshot and evaluation (test predictions, representations)."""
        t = self.trainer
        if t.global_step not in Run(self.writer.path).steps:
            self.record(history=False)
        self.checkpoint("done")
        split = "test" if len(t.data["x_test"]) else "train"
        x = t.data[f"x_{split}"][: self.plan.final_samples]
        tensors = {
            "predictions": t.predict(x).float().cpu().contiguous(),
            "targets": t.data[f"y_{split}"][: len(x)].cpu().contiguous(),
        }
        if t.loss_name == "ce":
            tensors["predictions"] = tensors["predictions"].softmax(-1).contiguous()
        layers = self.plan.layers
        if layers is None:
            try:
                layers = default_layers(t.model)[-1:]
            except ValueError:
                layers = []  # nothing to observe (no submodules): predictions only
        if layers:
            with eval_mode(t.model):
                cache = capture(t.model, x, layers, dtype=torch.float32)
            for name in layers:  # as captured: analysis pools token sequences and maps
                tensors[f"reps.{name}"] = torch.as_tensor(cache[name]).float().cpu().contiguous()
        metadata = {"split": split, "loss": t.loss_name, "step": str(t.global_step)}
        path = self.store.final_path(self.trial.trial_id)
        _atomic(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))
        final = {}
        for row in t.history:
            final.update({k: float(v) for k, v in row.items() if k not in ("step", "seconds")})
        return final


# ---------------------------------------------------------------------- one config
def run_config(
    plan: SweepPlan,
    store: SweepStore,
    trials: list[Trial],
    emit: Emit,
    *,
    where: dict[str, Any] | None = None,
) -> None:
    """Train ``trials`` (one config, several seeds) to the end, writing each to its run
    directory. A trial that raises is recorded (``diverged`` for :class:`TrainingDiverged`,
    else ``failed`` with the traceback) and the others go on. ``where`` adds fields to the
    trial records (e.g. the Ray node)."""
    if len({t.config_id for t in trials}) != 1:
        raise ValueError("run_config trains the seeds of one config at a time")
    started = time.time()
    for t in trials:
        store.start(t.trial_id, t.config, t.seed, **(where or {}))
        emit({"event": "running", "trial_id": t.trial_id})
    dead: set[str] = set()

    def fail(trial: Trial, err: BaseException, run: _TrialRun | None = None) -> None:
        dead.add(trial.trial_id)
        diverged = isinstance(err, TrainingDiverged)
        state = "diverged" if diverged else "failed"
        message = f"{type(err).__name__}: {err}"
        if run is not None:
            try:
                run.checkpoint(state, message)  # the last good state, to continue from
            except Exception:
                pass  # keep the original error; the record below says what happened
        store.update(
            trial.trial_id,
            state=state,
            error=message if diverged else "".join(traceback.format_exception(err)),
            step=0 if run is None else run.trainer.global_step,
            ended=time.time(),
        )
        emit({"event": "finished", "trial_id": trial.trial_id, "state": state, "error": message})

    try:
        task, factory, _ = plan.build(trials[0].config)
    except Exception as err:
        for t in trials:
            fail(t, err)
        return
    resume = _common_checkpoint(store, trials)
    runs: list[_TrialRun] = []
    for t in trials:
        try:
            runs.append(_TrialRun(plan, store, t, task, factory, resume))
        except Exception as err:
            fail(t, err)
    steps = plan.steps_for(trials[0].config)
    batched = True
    while True:
        active = [r for r in runs if r.trial.trial_id not in dead and r.trainer.global_step < steps]
        if not active:
            break
        at = min(r.trainer.global_step for r in active)
        group = [r for r in active if r.trainer.global_step == at]  # resumed at the same step
        failures = len(dead)
        if not _advance(plan, group, steps, emit, fail, batched) and len(dead) == failures:
            batched = False  # the batch failed but every seed steps alone: go on seed by seed
    for r in runs:
        if r.trial.trial_id in dead:
            continue
        try:
            final = r.finish()
        except Exception as err:
            fail(r.trial, err, r)
            continue
        store.update(r.trial.trial_id, state="done", final=final, ended=time.time(),
                     seconds=time.time() - started)  # fmt: skip
        emit({"event": "finished", "trial_id": r.trial.trial_id, "state": "done",
              "value": final.get(plan.metric)})  # fmt: skip


def _common_checkpoint(store: SweepStore, trials: list[Trial]) -> int:
    """The last step at which every trial of the group has a checkpoint (0: start afresh).
    The group resumes there together, so it trains in the same batch as before (a worker
    killed between two seeds' checkpoints leaves them one checkpoint apart)."""
    common: set[int] | None = None
    for t in trials:
        path = store.run_path(t.trial_id)
        steps = set(Run(path).checkpoint_steps) if (path / "run.json").is_file() else set()
        common = steps if common is None else common & steps
    return max(common or {0})


class _Schedule:
    """When a group records snapshots and checkpoints. Snapshots every ``record_every`` steps;
    checkpoints every ``checkpoint_every`` steps, or — when that is None — at the first snapshot
    step after :data:`CHECKPOINT_SECONDS` of training since the last one (so short trials pay
    for few checkpoints and a long one loses at most about that much work to a crash). One
    decision per step for the whole group: its seeds always hold checkpoints at the same steps."""

    def __init__(self, plan: SweepPlan, steps: int) -> None:
        self.plan, self.steps = plan, steps
        self._last = time.monotonic()

    def due(self, step: int) -> tuple[bool, bool]:
        """(record, checkpoint) after the update that reached ``step``."""
        if step >= self.steps:
            return False, False  # the end: finish() records and checkpoints
        record = step % self.plan.record_every == 0
        every = self.plan.checkpoint_every
        if every is not None:
            ckpt = step % every == 0
        else:
            ckpt = record and time.monotonic() - self._last >= CHECKPOINT_SECONDS
        if ckpt:
            self._last = time.monotonic()
        return record, ckpt


def _advance(
    plan: SweepPlan,
    group: list[_TrialRun],
    steps: int,
    emit: Emit,
    fail: Callable[..., None],
    batched: bool,
) -> bool:
    """Train ``group`` (trials at one step) to ``steps``: batched with vmap when ``batched``,
    else one trial after another (a trial that raises is recorded and the others go on).
    When a batched step raises, each trial takes that step alone (the ones that raise are
    recorded) and False is returned so the caller regroups the others."""
    live = list(group)
    schedule = _Schedule(plan, steps)
    multi = MultiSeedTrainer.from_trainers([r.trainer for r in live]) if batched else None
    while live and live[0].trainer.global_step < steps:
        before = live[0].trainer.global_step
        if multi is None:
            done = []
            for r in live:
                try:
                    done.append((r, r.trainer.step()))
                except Exception as err:
                    fail(r.trial, err, r)
            live = [r for r, _ in done]
            _after_step(plan, done, schedule.due(before + 1), emit)
            continue
        try:
            rows = multi.step()
        except Exception:
            done = []
            for r in live:
                r.update(multi.seed_trainer(r.trial.seed, into=r.trainer))
                try:
                    done.append((r, r.trainer.step()))
                except Exception as err:
                    fail(r.trial, err, r)
            _after_step(plan, done, schedule.due(before + 1), emit)
            return False
        due = schedule.due(multi.global_step)
        if any(due) or multi.global_step == steps:
            for r in live:
                r.update(multi.seed_trainer(r.trial.seed, into=r.trainer))
        _after_step(plan, list(zip(live, rows, strict=True)), due, emit)
    return True


def _after_step(
    plan: SweepPlan,
    done: list[tuple[_TrialRun, dict[str, float]]],
    due: tuple[bool, bool],
    emit: Emit,
) -> None:
    """Snapshots and checkpoints ``due`` (record, checkpoint) after a step, and progress
    events (the trainers are current)."""
    values = {}
    for r, row in done:
        if due[0]:
            r.record(history=not due[1])
        if due[1]:
            r.checkpoint()
        if plan.metric in row:
            values[r.trial.trial_id] = float(row[plan.metric])
            emit({"event": "progress", "trial_id": r.trial.trial_id, "step": int(row["step"]),
                  "value": values[r.trial.trial_id]})  # fmt: skip
    if values:  # one event for the group (a Ray Tune trial reports the mean over its seeds)
        emit({"event": "step", "step": int(done[0][1]["step"]), "values": values})
