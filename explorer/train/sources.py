"""Sources of snapshots: one small protocol over everything a lab can look at.

A *source* yields :class:`~explorer.train.Snapshot` s (step, parameters, recorded activations,
attention, predictions, metrics) and knows how to rebuild the model at a step::

    source.name, source.steps, source.latest, source.at(step)
    source.model_at(step)            # an nn.Module holding the weights at that step
    source.history()                 # one metric dict per step (may be empty)
    source.task, source.probe        # evaluation inputs (x_test, y_test, meta) and probe
    source.subscribe(cb) -> unsubscribe   # cb(snapshot) for each new snapshot
    source.run_id                    # changes when the source starts a new run
    source.notes                     # sentences a lab shows in its status line

:func:`as_source` turns each of these into one: a :class:`~explorer.train.Recorder` (or a
training lab, through its ``recorder``), a run directory written by
:class:`~explorer.train.runs.RunWriter` (a :class:`~explorer.train.runs.Run`), a model with
inputs (``(model, inputs)``; explorer's models or any ``nn.Module``), and a Hugging Face model
folder with texts (``(folder, texts)``). Compute only: no UI here.
"""

from __future__ import annotations

import fnmatch
import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn

from explorer.errors import ExplorerWarning
from explorer.models.hooks import capture, hook_names
from explorer.models.observe import model_at
from explorer.modes import eval_mode
from explorer.train.config import TaskLike
from explorer.train.objectives import resolve_loss
from explorer.train.probes import Probe, default_probe
from explorer.train.recorders import ATTENTION_HOOKS, Recorder, Snapshot
from explorer.train.runs import Run, RunError, RunTask

__all__ = ["ModelSource", "RecorderSource", "Source", "as_source"]


@runtime_checkable
class Source(Protocol):
    """What a lab follows (see the module docstring)."""

    name: str

    @property
    def steps(self) -> list[int]: ...

    @property
    def latest(self) -> Snapshot | None: ...

    @property
    def run_id(self) -> int: ...

    def at(self, step: int) -> Snapshot: ...

    def model_at(self, step: int) -> nn.Module: ...

    def history(self) -> list[dict[str, float]]: ...

    def subscribe(self, callback: Callable[[Snapshot], None]) -> Callable[[], None]: ...


def _no_unsubscribe() -> None:
    return None


class RecorderSource:
    """A live :class:`Recorder` (and its trainer) as a source. The task, probe and model are
    read when asked, so a rebuilt trainer (new task, new model) is followed, never frozen."""

    notes: tuple[str, ...] = ()

    def __init__(self, recorder: Recorder) -> None:
        if not isinstance(recorder, Recorder):
            raise TypeError(f"expected a Recorder, got {type(recorder).__name__}")
        self.recorder = recorder

    @property
    def name(self) -> str:
        return str(getattr(self.recorder.trainer.task, "name", "training"))

    @property
    def steps(self) -> list[int]:
        return self.recorder.steps

    @property
    def latest(self) -> Snapshot | None:
        return self.recorder.latest

    @property
    def run_id(self) -> int:
        return self.recorder.run_id

    @property
    def task(self) -> TaskLike:
        return self.recorder.trainer.task

    @property
    def probe(self) -> Probe | None:
        return self.recorder.probe

    def at(self, step: int) -> Snapshot:
        return self.recorder.at(step)

    def model_at(self, step: int) -> nn.Module:
        snap = self.recorder.at(step)
        if not snap.params:
            raise ValueError("the recorder keeps no parameters (params=False): no model at a step")
        return model_at(self.recorder.trainer.model, snap.params).eval()

    def history(self) -> list[dict[str, float]]:
        return list(self.recorder.trainer.history)

    @property
    def train_config(self) -> Any:
        """The trainer's :class:`TrainConfig` (to train more models like this one)."""
        return self.recorder.trainer.config

    def full_task(self) -> TaskLike:
        """The task being trained on (all splits)."""
        return self.recorder.trainer.task

    def subscribe(self, callback: Callable[[Snapshot], None]) -> Callable[[], None]:
        return self.recorder.subscribe(callback)

    def __repr__(self) -> str:
        return f"RecorderSource({self.recorder!r})"


class ModelSource:
    """One model looked at on fixed inputs: a source with a single snapshot at step 0.

    ``inputs``: a tensor/array batch, a text or a list of texts (for a pretrained
    transformer, see :func:`explorer.models.load_pretrained`), or a task — then the model is
    run on the task's probe (:func:`explorer.train.default_probe`: a field's full grid, a
    2-D plane, test sequences or test points) and the task's test split is the ``task``;
    ``labels`` (n,) optional;
    ``tokens``: display strings for the first input's positions (taken from the model's
    tokenizer for text). The snapshot holds the parameters, the attention patterns (when the
    model has ``blocks.*.attn.hook_pattern`` hook points; for texts, of the first text) and
    the model's outputs when they are a tensor. ``notes`` says when a text was truncated to
    the model's maximum length or holds unknown tokens.
    """

    run_id = 0

    def __init__(
        self,
        model: nn.Module,
        inputs: Any = None,
        *,
        labels: Any = None,
        tokens: Sequence[str] | None = None,
        name: str | None = None,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self.model = model
        self.name = name or str(getattr(model, "name", "") or type(model).__name__)
        self.probe: Probe | None = None
        self._task: TaskLike | None = None
        if inputs is not None and hasattr(
            inputs, "x_train"
        ):  # a task: look at it through its probe
            self._task, self.probe = inputs, default_probe(inputs)
            inputs = self.probe.inputs
        self.inputs = inputs
        self.labels = labels
        self.tokens = None if tokens is None else [str(t) for t in tokens]
        self.notes: tuple[str, ...] = ()
        self._snap = self._observe()

    @property
    def texts(self) -> list[str] | None:
        if isinstance(self.inputs, str):
            return [self.inputs]
        if (
            isinstance(self.inputs, (list, tuple))
            and self.inputs
            and isinstance(self.inputs[0], str)
        ):
            return list(self.inputs)
        return None

    def _unknown_tokens(self, text: str) -> tuple[str, ...]:
        tok = getattr(self.model, "tokenizer", None)
        unk = getattr(tok, "unk_token_id", None)
        if tok is None or unk is None:
            return ()
        ids = tok(text, truncation=True)["input_ids"]
        n_unk = sum(1 for i in ids if i == unk)
        return (f"{n_unk} unknown token(s), shown as {tok.unk_token}",) if n_unk else ()

    @torch.no_grad()
    def _observe(self) -> Snapshot:
        model = self.model
        params = {k: v.detach().float().cpu().clone() for k, v in model.named_parameters()}
        if self.inputs is None:
            return Snapshot(0, {}, params)
        texts = self.texts
        inputs = texts[0] if texts is not None else torch.as_tensor(self.inputs)
        if isinstance(inputs, torch.Tensor) and inputs.is_floating_point():
            inputs = inputs.float()
        # a text cut to the model's length warns (ExplorerWarning): the lab's status says it
        with warnings.catch_warnings(record=True) as caught, eval_mode(model):
            warnings.simplefilter("always", ExplorerWarning)
            if texts is not None and self.tokens is None and hasattr(model, "tokens"):
                self.tokens = list(getattr(model, "tokens")(texts[0]))  # noqa: B009
            if fnmatch.filter(hook_names(model), ATTENTION_HOOKS):
                cache = capture(model, inputs, [ATTENTION_HOOKS], dtype=torch.float32)
                out, attention = cache.output, {k: v.cpu() for k, v in cache.items()}
            else:
                out, attention = model(inputs), {}
        cut = dict.fromkeys(
            str(w.message) for w in caught if issubclass(w.category, ExplorerWarning)
        )
        self.notes = (*cut, *(() if texts is None else self._unknown_tokens(texts[0])))
        preds = out.detach().float().cpu() if isinstance(out, torch.Tensor) else None
        if preds is not None and self._task is not None and resolve_loss(self._task, None) == "ce":
            preds = preds.softmax(-1)  # class probabilities, as a Recorder keeps them
        return Snapshot(0, {}, params, attention=attention, predictions=preds)

    @property
    def steps(self) -> list[int]:
        return [0]

    @property
    def latest(self) -> Snapshot:
        return self._snap

    @property
    def task(self) -> TaskLike | None:
        """The task given, or the inputs as a task's test split (texts: ``None``)."""
        if self._task is not None:
            return self._task
        if self.inputs is None or self.texts is not None:
            return None
        x = torch.as_tensor(self.inputs)
        y = torch.zeros(len(x)) if self.labels is None else torch.as_tensor(self.labels)
        kind = "classification" if self.labels is not None else "regression"
        return RunTask(self.name, kind, {}, x, y)

    def at(self, step: int) -> Snapshot:
        return self._snap

    train_config = None

    def full_task(self) -> TaskLike:
        if self._task is None:
            raise ValueError("this source was given inputs, not a task: nothing to train on")
        return self._task

    def model_at(self, step: int) -> nn.Module:
        return self.model

    def history(self) -> list[dict[str, float]]:
        return []

    def subscribe(self, callback: Callable[[Snapshot], None]) -> Callable[[], None]:
        return _no_unsubscribe

    def __repr__(self) -> str:
        return f"ModelSource({self.name!r})"


def _from_path(path: Path, inputs: Any = None) -> Any:
    if (path / "run.json").is_file():
        return Run(path)
    if (path / "config.json").is_file():
        if inputs is None:
            raise ValueError(
                f"{path} is a Hugging Face model folder: give texts to run it on, "
                "source=(folder, texts)"
            )
        from explorer.models.hf import load_pretrained

        return ModelSource(load_pretrained(path), inputs)
    if path.is_dir():
        raise RunError(
            f"{path} is neither a run directory (run.json) nor a Hugging Face model folder "
            "(config.json)"
        )
    raise FileNotFoundError(f"no run directory or model folder at {path}")


def as_source(source: Any) -> Any:
    """Turn ``source`` into a :class:`Source` (see the module docstring); a source is
    returned as it is. Raises TypeError naming what is accepted."""
    if isinstance(source, Recorder):
        return RecorderSource(source)
    if isinstance(source, (str, os.PathLike)):
        return _from_path(Path(source))
    if isinstance(source, nn.Module):
        return ModelSource(source)
    if isinstance(source, tuple) and len(source) == 2:
        what, inputs = source
        if isinstance(what, (str, os.PathLike)):
            return _from_path(Path(what), inputs)
        if isinstance(what, nn.Module):
            return ModelSource(what, inputs)
    recorder = getattr(source, "recorder", None)
    if isinstance(recorder, Recorder):  # a training lab
        return RecorderSource(recorder)
    if isinstance(source, Source):
        return source
    raise TypeError(
        f"cannot follow a {type(source).__name__}: give a TrainingLab, a Recorder, a run "
        "directory, a model (nn.Module), (model, inputs), or (Hugging Face folder, texts)"
    )
