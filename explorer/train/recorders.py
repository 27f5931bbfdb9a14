"""Snapshots of a training run in a memory-bounded buffer, so any view can replay any step.

A snapshot holds the step's metrics, parameters, chosen activations (hook names or globs, as
``explorer.models.hooks.capture`` takes them), attention patterns and the predictions on a
:class:`~explorer.train.probes.Probe`. When the buffer exceeds ``max_bytes``, policy
``"ring"`` drops the oldest snapshots; ``"thin"`` drops every second one and doubles ``every``,
so the buffer always spans the whole run at an even spacing.

Observations (activations, attention, predictions: one forward pass on the probe) are
deferred by default: a snapshot keeps its parameter copies and a copy of the model's buffers,
and runs that pass on a private copy of the model when one of them is first read. Snapshots
usually come faster than views draw (a 2-D MLP: ~50 a second, views ≤ 10), so most are never
observed during training, and one that is gives exactly what recording it at once would have
given (``lazy=False`` records every one at once: a model whose forward depends on state other
than its parameters and buffers).

Whoever wants to follow a run live subscribes: ``unsubscribe = recorder.subscribe(callback)``
calls ``callback(snapshot)`` after every recording, in the recording thread (keep it cheap:
the labs only hand the snapshot to their own drawing thread). ``run_id`` changes whenever the
buffer starts a new run (:meth:`Recorder.clear`, :meth:`Recorder.retarget`).
"""

from __future__ import annotations

import bisect
import copy
import fnmatch
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import partial
from typing import Any, TypeAlias

import torch
from torch import nn

from explorer.models.hooks import capture, hook_names
from explorer.modes import eval_mode
from explorer.train.probes import Probe, default_probe
from explorer.train.trainer import Trainer
from explorer.validation import check_model_inputs, check_positive_int

__all__ = ["ATTENTION_HOOKS", "Recorder", "Snapshot"]

ATTENTION_HOOKS = "blocks.*.attn.hook_pattern"


def _nbytes(tensors: dict[str, torch.Tensor]) -> int:
    return sum(t.element_size() * t.nelement() for t in tensors.values())


def _probabilities(logits: torch.Tensor) -> torch.Tensor:
    """Softmax over the last (class) axis. With few classes it runs over a leading axis:
    torch's CPU softmax over a short last axis is ~7× slower (0.17 vs 0.025 ms for 4096 × 2,
    a third of a toy lab's snapshot)."""
    if logits.shape[-1] > 32:
        return logits.softmax(-1)
    return logits.movedim(-1, 0).softmax(0).movedim(0, -1).contiguous()


Observation: TypeAlias = tuple[
    dict[str, torch.Tensor], dict[str, torch.Tensor], torch.Tensor | None
]  # activations, attention, predictions


def _observation_bytes(observation: Observation) -> int:
    acts, attention, preds = observation
    pred = 0 if preds is None else preds.element_size() * preds.nelement()
    return _nbytes(acts) + _nbytes(attention) + pred


class Snapshot:
    """Everything recorded at one step; tensors are CPU float32 copies.

    ``params``: name → parameter. ``activations``: hook name → output on the probe inputs.
    ``attention``: hook name → pattern (B, H, T, T). ``predictions``: model outputs on the
    probe (class probabilities for cross-entropy tasks, raw outputs otherwise).

    A :class:`Recorder` may defer the last three (see the module docstring): they are then
    computed when one of them is first read, once, in whichever thread reads them.
    """

    __slots__ = ("_lock", "_nbytes", "_observed", "_pending", "metrics", "params", "step")

    def __init__(
        self,
        step: int,
        metrics: dict[str, float],
        params: dict[str, torch.Tensor] | None = None,
        activations: dict[str, torch.Tensor] | None = None,
        attention: dict[str, torch.Tensor] | None = None,
        predictions: torch.Tensor | None = None,
    ) -> None:
        self.step = step
        self.metrics = metrics
        self.params = {} if params is None else params
        self._observed: Observation = (activations or {}, attention or {}, predictions)
        self._pending: Callable[[], Observation] | None = None
        self._nbytes = _nbytes(self.params) + _observation_bytes(self._observed)
        self._lock: threading.Lock | None = None

    @classmethod
    def deferred(
        cls,
        step: int,
        metrics: dict[str, float],
        params: dict[str, torch.Tensor],
        observe: Callable[[], Observation],
        nbytes: int,
    ) -> Snapshot:
        """A snapshot whose observations ``observe()`` computes when first read; ``nbytes``:
        what it holds once they are (its size in a bounded buffer from the start)."""
        snap = cls(step, metrics, params)
        snap._pending, snap._nbytes, snap._lock = observe, nbytes, threading.Lock()
        return snap

    def _observation(self) -> Observation:
        if self._pending is not None and self._lock is not None:
            with self._lock:
                if self._pending is not None:
                    self._observed = self._pending()
                    self._pending = None  # drops the buffers and model copy it held
        return self._observed

    @property
    def activations(self) -> dict[str, torch.Tensor]:
        return self._observation()[0]

    @property
    def attention(self) -> dict[str, torch.Tensor]:
        return self._observation()[1]

    @property
    def predictions(self) -> torch.Tensor | None:
        return self._observation()[2]

    @property
    def nbytes(self) -> int:
        return self._nbytes

    def __repr__(self) -> str:
        state = "deferred" if self._pending is not None else "observed"
        return f"Snapshot(step={self.step}, {len(self.params)} params, {state})"


class _Plan:
    """What a snapshot observes of a model: hook outputs matching ``patterns`` and the outputs
    on ``inputs`` (the probe's; ``probabilities``: softmax them), in one forward pass."""

    def __init__(
        self,
        patterns: list[str],
        inputs: torch.Tensor | None,
        predictions: bool,
        probabilities: bool,
    ) -> None:
        self.patterns, self.inputs = patterns, inputs
        self.predictions, self.probabilities = predictions, probabilities

    @torch.no_grad()
    def run(self, model: nn.Module) -> Observation:
        if not self.predictions and not self.patterns:
            return {}, {}, None
        with eval_mode(model):
            if self.patterns:
                cache = capture(model, self.inputs, self.patterns, dtype=torch.float32)
                out, tensors = cache.output, dict(cache)
            else:
                out, tensors = model(self.inputs), {}
        attention = {k: v for k, v in tensors.items() if fnmatch.fnmatchcase(k, ATTENTION_HOOKS)}
        acts = {k: v for k, v in tensors.items() if k not in attention}
        preds = None
        if self.predictions and isinstance(out, torch.Tensor):
            preds = out.detach().float()
            if self.probabilities:
                preds = _probabilities(preds)
            preds = preds.cpu()
        return acts, attention, preds


class _Shadow:
    """A private copy of a model that observes deferred snapshots, one at a time: it takes a
    snapshot's parameters and buffers, then runs the plan."""

    def __init__(self, model: nn.Module, plan: _Plan) -> None:
        self.model, self.plan = copy.deepcopy(model), plan
        self.lock = threading.Lock()
        # listed once: walking the module tree costs ~0.3 ms per observation (52 modules)
        self.tensors = [*self.model.named_parameters(), *self.model.named_buffers()]

    def observe(
        self, params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor]
    ) -> Observation:
        with self.lock, torch.no_grad():
            for name, t in self.tensors:
                t.copy_(params[name] if name in params else buffers[name])
            return self.plan.run(self.model)


class Recorder:
    """Record :class:`Snapshot` s of ``trainer`` every ``every`` steps into a bounded buffer.

    ``activations``: hook names/globs to keep (on the probe inputs). ``attention``: ``"auto"``
    keeps ``blocks.*.attn.hook_pattern`` when the model has it, ``True``/``False`` forces it.
    ``probe``: a :class:`Probe`, ``"auto"`` (:func:`default_probe`) or ``None`` (no
    predictions). ``max_bytes`` bounds the buffer (default 256 MiB). ``lazy``: defer each
    snapshot's observations until read (see the module docstring; it needs ``params`` and
    float32/16 parameters, and holds one more copy of the model; a model ``copy.deepcopy``
    cannot copy is observed at once, and ``lazy`` turns False). Thread-safe: one thread may
    record while another reads.
    """

    def __init__(
        self,
        trainer: Trainer,
        *,
        every: int = 10,
        params: bool = True,
        activations: Sequence[str] = (),
        attention: bool | str = "auto",
        probe: Probe | str | None = "auto",
        max_bytes: int = 256 * 2**20,
        policy: str = "ring",
        lazy: bool = True,
    ) -> None:
        self.trainer = trainer
        self.every = check_positive_int(every, "every")
        self.max_bytes = check_positive_int(max_bytes, "max_bytes")
        if policy not in ("ring", "thin"):
            raise ValueError(f"policy must be 'ring' or 'thin', got {policy!r}")
        if attention not in ("auto", True, False):
            raise ValueError(f"attention must be 'auto', True or False, got {attention!r}")
        if not isinstance(lazy, bool):
            raise TypeError(f"lazy must be True or False, got {lazy!r}")
        if isinstance(activations, str):
            activations = [activations]
        self.policy = policy
        self.lazy = lazy
        self.keep_params = params
        self.activations = list(activations)
        self.attention = attention
        if probe == "auto":
            probe = default_probe(trainer.task)
        if probe is not None and not isinstance(probe, Probe):
            raise TypeError(f"probe must be a Probe, 'auto' or None, got {type(probe).__name__}")
        self.probe: Probe | None = probe
        self._snaps: list[Snapshot] = []
        self._steps: list[int] = []
        self._bytes = 0
        self._lock = threading.RLock()
        self._subscribers: list[Callable[[Snapshot], None]] = []
        self._plan: tuple[tuple[Any, ...], _Plan] | None = None  # (what it was made for, plan)
        self._shadow: tuple[_Shadow, int] | None = None  # (model copy, bytes observed)
        self.run_id = 0

    # ------------------------------------------------------------------ following
    def subscribe(self, callback: Callable[[Snapshot], None]) -> Callable[[], None]:
        """Call ``callback(snapshot)`` after every recording (in the recording thread) until
        the returned function is called. A callback that raises is reported with a
        ``RuntimeWarning`` and stays subscribed; recording goes on."""
        if not callable(callback):
            raise TypeError(f"callback must be callable, got {type(callback).__name__}")
        with self._lock:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

        return unsubscribe

    def _notify(self, snap: Snapshot) -> None:
        with self._lock:
            callbacks = list(self._subscribers)
        for callback in callbacks:
            try:
                callback(snap)
            except Exception as err:
                warnings.warn(
                    f"recorder subscriber {callback!r} failed at step {snap.step}: "
                    f"{type(err).__name__}: {err}",
                    RuntimeWarning,
                    stacklevel=2,
                )

    # ------------------------------------------------------------------ recording
    def _hook_patterns(self) -> list[str]:
        names = hook_names(self.trainer.model)
        patterns = list(self.activations)
        has_attention = bool(fnmatch.filter(names, ATTENTION_HOOKS))
        if self.attention is True and not has_attention:
            raise ValueError(
                f"attention=True but {type(self.trainer.model).__name__} has no "
                f"{ATTENTION_HOOKS!r} hook points"
            )
        if self.attention is True or (self.attention == "auto" and has_attention):
            patterns.append(ATTENTION_HOOKS)
        return patterns

    def _current_plan(self) -> _Plan:
        """The plan for the trainer's model, probe and hook settings now (made again, and any
        model copy dropped, when one of them changed)."""
        model, probe = self.trainer.model, self.probe
        key = (model, probe, tuple(self.activations), self.attention, self.trainer.loss_name)
        if self._plan is not None:
            made_for = self._plan[0]
            if made_for[0] is model and made_for[1] is probe and made_for[2:] == key[2:]:
                return self._plan[1]
        inputs = (
            check_model_inputs(probe.inputs, model).to(self.trainer.device)  # model's dtype
            if probe is not None
            else self.trainer.data["x_test"][:8]
        )
        plan = _Plan(self._hook_patterns(), inputs, probe is not None, key[-1] == "ce")
        self._plan, self._shadow = (key, plan), None
        return plan

    def _deferrable(self, params: dict[str, torch.Tensor]) -> bool:
        """Whether this snapshot's observations can be deferred exactly: ``lazy``, parameters
        kept, and float32 copies of them exact (float32/16 parameters)."""
        return (
            self.lazy
            and bool(params)
            and all(
                p.dtype in (torch.float32, torch.float16, torch.bfloat16)
                for p in self.trainer.model.parameters()
            )
        )

    def record(self) -> Snapshot:
        """Take a snapshot now (at ``trainer.global_step``), replacing one at the same step.

        The first snapshot of a model (or after :meth:`clear`, or a change of probe or hooks)
        is observed at once; later ones are deferred when ``lazy`` allows."""
        step = self.trainer.global_step
        model = self.trainer.model
        params = (
            {k: v.detach().float().cpu().clone() for k, v in model.named_parameters()}
            if self.keep_params
            else {}
        )
        metrics: dict[str, float] = (
            dict(self.trainer.history[-1]) if self.trainer.history else {"step": 0.0}
        )
        plan = self._current_plan()
        if self._shadow is not None and self._deferrable(params):
            shadow, observed_bytes = self._shadow
            buffers = {k: b.detach().clone() for k, b in model.named_buffers()}
            snap = Snapshot.deferred(
                step, metrics, params, partial(shadow.observe, params, buffers),
                _nbytes(params) + _nbytes(buffers) + observed_bytes,
            )  # fmt: skip
        else:
            observation = plan.run(model)
            snap = Snapshot(step, metrics, params, *observation)
            if self._deferrable(params):
                try:
                    self._shadow = (_Shadow(model, plan), _observation_bytes(observation))
                except Exception:  # a model deepcopy cannot copy: observe every snapshot
                    self.lazy = False
        if snap.nbytes > self.max_bytes:
            raise ValueError(
                f"one snapshot takes {snap.nbytes / 2**20:.1f} MiB, more than max_bytes="
                f"{self.max_bytes / 2**20:.1f} MiB; raise max_bytes, record fewer activations, "
                "or pass params=False"
            )
        with self._lock:
            self._insert(snap)
            self._enforce_bound()
        self._notify(snap)
        return snap

    def maybe_record(self) -> Snapshot | None:
        """Record if the current step is a multiple of ``every`` (or 0) and not yet recorded."""
        step = self.trainer.global_step
        if step % self.every or (self._steps and self._steps[-1] == step):
            return None
        return self.record()

    def _insert(self, snap: Snapshot) -> None:
        i = bisect.bisect_left(self._steps, snap.step)
        if i < len(self._steps) and self._steps[i] == snap.step:
            self._bytes -= self._snaps[i].nbytes
            self._snaps[i] = snap
        else:
            self._snaps.insert(i, snap)
            self._steps.insert(i, snap.step)
        self._bytes += snap.nbytes

    def _enforce_bound(self) -> None:
        while self._bytes > self.max_bytes and len(self._snaps) > 1:
            if self.policy == "ring":
                self._bytes -= self._snaps.pop(0).nbytes
                self._steps.pop(0)
            else:
                keep = sorted({*range(0, len(self._snaps) - 1, 2), len(self._snaps) - 1})
                self._snaps = [self._snaps[i] for i in keep]
                self._steps = [self._steps[i] for i in keep]
                self._bytes = sum(s.nbytes for s in self._snaps)
                self.every *= 2

    def restore(self, snapshots: Iterable[Snapshot]) -> None:
        """Put saved snapshots back (e.g. read from a run directory) without notifying
        subscribers; the memory bound applies as for recorded ones."""
        with self._lock:
            for snap in snapshots:
                if not isinstance(snap, Snapshot):
                    raise TypeError(f"expected Snapshot, got {type(snap).__name__}")
                self._insert(snap)
            self._enforce_bound()

    def truncate(self, step: int) -> None:
        """Drop the snapshots recorded after ``step`` (training was rolled back to it)."""
        with self._lock:
            i = bisect.bisect_right(self._steps, int(step))
            self._bytes -= sum(s.nbytes for s in self._snaps[i:])
            del self._snaps[i:], self._steps[i:]

    def clear(self) -> None:
        """Drop every snapshot: a new run starts (``run_id`` changes)."""
        with self._lock:
            self._snaps, self._steps, self._bytes = [], [], 0
            self._plan = self._shadow = None
            self.run_id += 1

    def retarget(self, trainer: Trainer) -> None:
        """Follow a rebuilt trainer (new model or task): clears the buffer, re-derives the
        default probe when the task changed."""
        task_changed = trainer.task is not self.trainer.task
        self.trainer = trainer
        if task_changed and self.probe is not None:
            self.probe = default_probe(trainer.task)
        self.clear()

    # ------------------------------------------------------------------ reading
    @property
    def steps(self) -> list[int]:
        with self._lock:
            return list(self._steps)

    @property
    def nbytes(self) -> int:
        return self._bytes

    @property
    def latest(self) -> Snapshot | None:
        with self._lock:
            return self._snaps[-1] if self._snaps else None

    def at(self, step: int) -> Snapshot:
        """The snapshot recorded at ``step``, or the last one before it."""
        with self._lock:
            i = bisect.bisect_right(self._steps, step) - 1
            if i < 0:
                first = self._steps[0] if self._steps else None
                raise KeyError(f"no snapshot at or before step {step} (first recorded: {first})")
            return self._snaps[i]

    def __len__(self) -> int:
        return len(self._snaps)

    def __iter__(self) -> Iterator[Snapshot]:
        with self._lock:
            return iter(list(self._snaps))

    def __repr__(self) -> str:
        return (
            f"Recorder({len(self)} snapshots, steps {self._steps[:1]}..{self._steps[-1:]}, "
            f"{self._bytes / 2**20:.1f}/{self.max_bytes / 2**20:.0f} MiB, policy={self.policy})"
        )
