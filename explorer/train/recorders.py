"""Snapshots of a training run in a memory-bounded buffer, so any view can replay any step.

A snapshot holds the step's metrics, parameters, chosen activations (hook names or globs, as
``explorer.models.hooks.capture`` takes them), attention patterns and the predictions on a
:class:`~explorer.train.probes.Probe`. When the buffer exceeds ``max_bytes``, policy
``"ring"`` drops the oldest snapshots; ``"thin"`` drops every second one and doubles ``every``,
so the buffer always spans the whole run at an even spacing.

Whoever wants to follow a run live subscribes: ``unsubscribe = recorder.subscribe(callback)``
calls ``callback(snapshot)`` after every recording, in the recording thread (keep it cheap:
the labs only hand the snapshot to their own drawing thread). ``run_id`` changes whenever the
buffer starts a new run (:meth:`Recorder.clear`, :meth:`Recorder.retarget`).
"""

from __future__ import annotations

import bisect
import fnmatch
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import torch

from explorer.models.hooks import capture, hook_names
from explorer.modes import eval_mode
from explorer.train.probes import Probe, default_probe
from explorer.train.trainer import Trainer
from explorer.validation import check_positive_int

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


@dataclass(frozen=True)
class Snapshot:
    """Everything recorded at one step; tensors are CPU float32 copies.

    ``predictions``: model outputs on the probe (class probabilities for cross-entropy
    tasks, raw outputs otherwise). ``attention``: hook name → pattern (B, H, T, T).
    """

    step: int
    metrics: dict[str, float]
    params: dict[str, torch.Tensor] = field(default_factory=dict)
    activations: dict[str, torch.Tensor] = field(default_factory=dict)
    attention: dict[str, torch.Tensor] = field(default_factory=dict)
    predictions: torch.Tensor | None = None

    @property
    def nbytes(self) -> int:
        pred = (
            0
            if self.predictions is None
            else self.predictions.element_size() * self.predictions.nelement()
        )
        return _nbytes(self.params) + _nbytes(self.activations) + _nbytes(self.attention) + pred


class Recorder:
    """Record :class:`Snapshot` s of ``trainer`` every ``every`` steps into a bounded buffer.

    ``activations``: hook names/globs to keep (on the probe inputs). ``attention``: ``"auto"``
    keeps ``blocks.*.attn.hook_pattern`` when the model has it, ``True``/``False`` forces it.
    ``probe``: a :class:`Probe`, ``"auto"`` (:func:`default_probe`) or ``None`` (no
    predictions). ``max_bytes`` bounds the buffer (default 256 MiB). Thread-safe: one thread may
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
    ) -> None:
        self.trainer = trainer
        self.every = check_positive_int(every, "every")
        self.max_bytes = check_positive_int(max_bytes, "max_bytes")
        if policy not in ("ring", "thin"):
            raise ValueError(f"policy must be 'ring' or 'thin', got {policy!r}")
        if attention not in ("auto", True, False):
            raise ValueError(f"attention must be 'auto', True or False, got {attention!r}")
        if isinstance(activations, str):
            activations = [activations]
        self.policy = policy
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

    @torch.no_grad()
    def _observe(
        self,
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], torch.Tensor | None]:
        model = self.trainer.model
        patterns = self._hook_patterns()
        if self.probe is None and not patterns:
            return {}, {}, None
        inputs = (
            self.probe.inputs.to(self.trainer.device)
            if self.probe is not None
            else self.trainer.data["x_test"][:8]
        )
        with eval_mode(model):
            if patterns:
                cache = capture(model, inputs, patterns, dtype=torch.float32)
                out, tensors = cache.output, dict(cache)
            else:
                out, tensors = model(inputs), {}
        attention = {k: v for k, v in tensors.items() if fnmatch.fnmatchcase(k, ATTENTION_HOOKS)}
        acts = {k: v for k, v in tensors.items() if k not in attention}
        preds = None
        if self.probe is not None and isinstance(out, torch.Tensor):
            preds = out.detach().float()
            if self.trainer.loss_name == "ce":
                preds = _probabilities(preds)
            preds = preds.cpu()
        return acts, attention, preds

    def record(self) -> Snapshot:
        """Take a snapshot now (at ``trainer.global_step``), replacing one at the same step."""
        step = self.trainer.global_step
        params = (
            {k: v.detach().float().cpu().clone() for k, v in self.trainer.model.named_parameters()}
            if self.keep_params
            else {}
        )
        acts, attention, preds = self._observe()
        metrics: dict[str, float] = (
            dict(self.trainer.history[-1]) if self.trainer.history else {"step": 0.0}
        )
        snap = Snapshot(step, metrics, params, acts, attention, preds)
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
