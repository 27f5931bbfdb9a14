"""What a sweep runs: the base (task, model, training config, fixed values) × configs × seeds.

A *config* is a dict of the swept values; a *trial* is one config under one seed. Parameter
names route to the task (generator keyword), the model (config field or factory keyword) or the
training config (:class:`TrainConfig` field); write ``task.noise``, ``model.width`` or
``train.lr`` when a bare name would be ambiguous. ``steps`` is the number of updates.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from explorer.data import TASKS, make_task
from explorer.models.registry import MODELS, build_model, config_from_dict, config_to_dict
from explorer.train.config import TaskLike, TrainConfig
from explorer.train.sweep.space import Scalar, check_value, config_id
from explorer.validation import check_positive_int

__all__ = ["NAMESPACES", "SweepPlan", "Trial"]

NAMESPACES = ("task", "model", "train")
FORMAT, VERSION = "explorer.sweep", 1
_TRAIN_FIELDS = {f.name for f in dataclasses.fields(TrainConfig)} - {"seed"}


@dataclass(frozen=True)
class Trial:
    """One config under one seed. ``trial_id`` = ``<config_id>-s<seed>`` (stable across runs)."""

    config: dict[str, Scalar]
    seed: int
    config_id: str = field(init=False)
    trial_id: str = field(init=False)

    def __post_init__(self) -> None:
        cid = config_id(self.config)
        object.__setattr__(self, "config_id", cid)
        object.__setattr__(self, "trial_id", f"{cid}-s{self.seed}")

    def label(self) -> str:
        """``"width=32, lr=0.01, seed 2"``: for titles and messages."""
        parts = [
            f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in self.config.items()
        ]
        return ", ".join([*parts, f"seed {self.seed}"])


def _keywords(fn: Callable[..., Any]) -> set[str]:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return set()
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return {p.name for p in params if p.kind in kinds}


def _callable_name(fn: Callable[..., Any]) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', type(fn).__name__)}"


def _tensor_digest(task: TaskLike) -> str:
    h = hashlib.sha1()
    for attr in ("x_train", "y_train", "x_test", "y_test"):
        h.update(torch.as_tensor(getattr(task, attr)).contiguous().cpu().numpy().tobytes())
    return h.hexdigest()[:12]


class _TaskSource:
    """A fixed task object, a task name for :func:`explorer.data.make_task`, or a factory."""

    def __init__(self, task: Any) -> None:
        self.task: TaskLike | None = None
        self.fn: Callable[..., TaskLike] | None = None
        self.name: str | None = None
        if isinstance(task, str):
            if task not in TASKS:
                raise ValueError(f"unknown task {task!r}; available: {sorted(TASKS)}")
            self.name, self.keywords = task, _keywords(TASKS[task])
        elif all(hasattr(task, a) for a in ("x_train", "y_train", "x_test", "y_test")):
            self.task, self.keywords = task, set()
        elif callable(task):
            self.fn, self.keywords = task, _keywords(task)
        else:
            raise TypeError(
                "task must be a task name (see explorer.data.TASKS), a Task, or a callable "
                f"returning one; got {type(task).__name__}"
            )

    def build(self, params: dict[str, Any]) -> TaskLike:
        if self.name is not None:
            return make_task(self.name, **params)
        if self.fn is not None:
            return self.fn(**params)
        assert self.task is not None
        return self.task

    def describe(self) -> dict[str, Any]:
        if self.name is not None:
            return {"source": "name", "name": self.name}
        if self.fn is not None:
            return {"source": "factory", "name": _callable_name(self.fn)}
        assert self.task is not None
        return {
            "source": "task",
            "name": str(getattr(self.task, "name", "task")),
            "digest": _tensor_digest(self.task),
        }


class _ModelSource:
    """An explorer model config (dataclass or ``config_to_dict`` dict) or a model factory."""

    def __init__(self, model: Any) -> None:
        self.config: Any = None
        self.fn: Callable[..., nn.Module] | None = None
        if isinstance(model, Mapping):
            model = config_from_dict(dict(model)), model.get("kind")
        if isinstance(model, tuple):  # (config, kind) from a dict
            self.config, self.kind = model
        elif dataclasses.is_dataclass(model) and not isinstance(model, type):
            self.config, self.kind = model, getattr(model, "kind", None)
            if self.kind not in MODELS:
                raise TypeError(f"{type(model).__name__} is not an explorer model config")
        elif isinstance(model, nn.Module):
            raise TypeError(
                "a sweep builds a fresh model per trial: pass its config (e.g. MLPConfig(...)) or "
                "a factory, e.g. model=lambda width: MyNet(width), not a built module"
            )
        elif callable(model):
            self.fn = model
        else:
            raise TypeError(
                f"model must be a model config or a factory, got {type(model).__name__}"
            )
        if self.fn is not None:
            self.keywords = _keywords(self.fn) - {"seed"}
        else:
            self.keywords = {f.name for f in dataclasses.fields(self.config)} - {"seed"}

    def factory(self, params: dict[str, Any]) -> Callable[[int], nn.Module]:
        """``f(seed) -> nn.Module`` for one config (built under the seed, see build_seeded)."""
        if self.fn is not None:
            return _UserModel(self.fn, params)
        cfg = dataclasses.replace(self.config, **params)
        return _ConfigModel(cfg, self.kind)

    def describe(self) -> dict[str, Any]:
        if self.fn is not None:
            return {"source": "factory", "name": _callable_name(self.fn)}
        return {"source": "config", "config": config_to_dict(self.config, self.kind)}

    def config_dict(self, params: dict[str, Any], seed: int) -> dict[str, Any] | None:
        """The trial's model config as a dict (explorer models only; None for a factory)."""
        if self.fn is not None:
            return None
        cfg = dataclasses.replace(self.config, **params)
        if "seed" in {f.name for f in dataclasses.fields(cfg)}:
            cfg = dataclasses.replace(cfg, seed=seed)
        return config_to_dict(cfg, self.kind)


@dataclass(frozen=True)
class _ConfigModel:
    config: Any
    kind: str

    def __call__(self, seed: int) -> nn.Module:
        cfg = self.config
        if "seed" in {f.name for f in dataclasses.fields(cfg)}:
            cfg = dataclasses.replace(cfg, seed=seed)
        return build_model(cfg, self.kind)


@dataclass(frozen=True)
class _UserModel:
    fn: Callable[..., nn.Module]
    params: dict[str, Any]

    def __call__(self, seed: int) -> nn.Module:
        kw = dict(self.params)
        if "seed" in _keywords(self.fn):
            kw["seed"] = seed
        return self.fn(**kw)  # called by build_seeded: torch's generator is seeded already


class SweepPlan:
    """The resolved sweep: where each parameter goes, and the trials to run.

    ``configs``: list of swept-value dicts (from :func:`expand_grid` / :func:`sample_space`);
    ``base``: fixed values under the same names. See the module docstring for name routing.
    """

    def __init__(
        self,
        task: Any,
        model: Any,
        *,
        configs: Sequence[Mapping[str, Any]],
        seeds: Sequence[int],
        steps: int,
        train: TrainConfig | Mapping[str, Any] | None = None,
        base: Mapping[str, Any] | None = None,
        metric: str = "test_loss",
        mode: str = "min",
        record_every: int | None = None,
        checkpoint_every: int | None = None,
        layers: Sequence[str] | None = None,
        final_samples: int = 512,
        seeds_per_group: int | None = None,
    ) -> None:
        self.task_source = _TaskSource(task)
        self.model_source = _ModelSource(model)
        if train is None:
            train = TrainConfig()
        elif isinstance(train, Mapping):
            train = TrainConfig(**train)
        elif not isinstance(train, TrainConfig):
            raise TypeError(f"train must be a TrainConfig or a dict, got {type(train).__name__}")
        self.train = train
        self.steps = check_positive_int(steps, "steps")
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        if not isinstance(metric, str) or not metric:
            raise ValueError(f"metric must be a metric name such as 'test_loss', got {metric!r}")
        self.metric, self.mode = metric, mode
        default_every = max(1, self.steps // 10)
        self.record_every = check_positive_int(record_every or default_every, "record_every")
        self.checkpoint_every = (
            None if checkpoint_every is None
            else check_positive_int(checkpoint_every, "checkpoint_every")
        )  # fmt: skip
        self.layers = None if layers is None else [str(x) for x in layers]
        self.final_samples = check_positive_int(final_samples, "final_samples")
        seeds = [check_positive_int(s, "seed", minimum=0) for s in seeds]
        if not seeds or len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds must be distinct non-negative integers, got {seeds!r}")
        self.seeds = seeds
        self.seeds_per_group = (
            len(seeds) if seeds_per_group is None
            else check_positive_int(seeds_per_group, "seeds_per_group")
        )  # fmt: skip
        self.base = {str(k): check_value(f"base[{k!r}]", v) for k, v in (base or {}).items()}
        self.configs = [
            {str(k): check_value(f"config[{k!r}]", v) for k, v in c.items()} for c in configs
        ]
        if not self.configs:
            raise ValueError(
                "the sweep has no configs; give a grid, samples or [{}] for seeds only"
            )
        names = [*self.base] + [k for c in self.configs for k in c]
        self.routes = {name: self._route(name) for name in dict.fromkeys(names)}
        overlap = set(self.base) & {k for c in self.configs for k in c}
        if overlap:
            raise ValueError(f"{sorted(overlap)} are both fixed (base) and swept; pick one")
        self.trials = [Trial(c, s) for c in self.configs for s in self.seeds]
        ids = [t.trial_id for t in self.trials]
        if len(set(ids)) != len(ids):
            raise ValueError("the configs repeat; every config must differ in some value")
        for c in self.configs:  # fail here, not in a worker, on a bad value
            self.train_config(c, self.seeds[0])
            self.model_source.factory(self._params(c, "model"))

    # ------------------------------------------------------------------ routing
    def _route(self, name: str) -> tuple[str, str]:
        if name == "steps":
            return "steps", "steps"
        if name == "seed" or (name.endswith(".seed") and not name.startswith("task.")):
            raise ValueError("the seed is not a hyper-parameter here: pass seeds=[...]")
        where = {
            "task": self.task_source.keywords,
            "model": self.model_source.keywords,
            "train": _TRAIN_FIELDS,
        }
        if "." in name:
            space, key = name.split(".", 1)
            if space not in where:
                raise ValueError(f"{name!r}: the prefix must be one of {NAMESPACES}")
            if key not in where[space] and not (space == "task" and self.task_source.fn):
                raise ValueError(f"{name!r}: {key!r} is not a {space} parameter; known: "
                                 f"{sorted(where[space])}")  # fmt: skip
            return space, key
        hits = [space for space in NAMESPACES if name in where[space]]
        if len(hits) == 1:
            return hits[0], name
        if not hits:
            raise ValueError(
                f"{name!r} is not a parameter of the task, the model or TrainConfig; known: "
                f"task {sorted(where['task'])}, model {sorted(where['model'])}, "
                f"train {sorted(_TRAIN_FIELDS)}"
            )
        raise ValueError(f"{name!r} is ambiguous ({hits}); write e.g. '{hits[0]}.{name}'")

    def _params(self, config: Mapping[str, Any], space: str) -> dict[str, Any]:
        values = {**self.base, **config}
        return {
            key: values[n] for n, (sp, key) in self.routes.items() if sp == space and n in values
        }

    # ------------------------------------------------------------------ building a trial
    def steps_for(self, config: Mapping[str, Any]) -> int:
        return check_positive_int(self._params(config, "steps").get("steps", self.steps), "steps")

    def train_config(self, config: Mapping[str, Any], seed: int) -> TrainConfig:
        params = self._params(config, "train")
        params.setdefault("total_steps", self.steps_for(config))
        return self.train.with_(**params, seed=seed)

    def build(
        self, config: Mapping[str, Any]
    ) -> tuple[TaskLike, Callable[[int], nn.Module], TrainConfig]:
        """The task, model factory ``f(seed)`` and training config of one config (seed 0)."""
        task = self.task_source.build(self._params(config, "task"))
        factory = self.model_source.factory(self._params(config, "model"))
        return task, factory, self.train_config(config, 0)

    def describe_trial(self, trial: Trial) -> dict[str, Any]:
        """JSON description of a trial for its run directory (task, model, training config)."""
        return {
            "sweep_trial": trial.trial_id,
            "config_id": trial.config_id,
            "config": trial.config,
            "seed": trial.seed,
            "task": {**self.task_source.describe(), "kwargs": self._params(trial.config, "task")},
            "model": self.model_source.config_dict(self._params(trial.config, "model"), trial.seed),
            "train": self.train_config(trial.config, trial.seed).as_dict(),
            "steps": self.steps_for(trial.config),
        }

    # ------------------------------------------------------------------ identity
    def fingerprint(self) -> dict[str, Any]:
        """Everything that makes two sweeps' trials comparable (configs and seeds aside)."""
        return {
            "task": self.task_source.describe(),
            "model": self.model_source.describe(),
            "train": self.train.as_dict(),
            "base": self.base,
            "steps": self.steps,
            "record_every": self.record_every,
            "checkpoint_every": self.checkpoint_every,
            "layers": self.layers,
            "final_samples": self.final_samples,
        }

    def describe(self) -> dict[str, Any]:
        """The sweep.json content."""
        return {
            "format": FORMAT,
            "version": VERSION,
            **self.fingerprint(),
            "metric": self.metric,
            "mode": self.mode,
            "names": list(self.routes),
            "swept": list(dict.fromkeys(k for c in self.configs for k in c)),
            "configs": self.configs,
            "seeds": self.seeds,
            "seeds_per_group": self.seeds_per_group,
        }

    def groups(self, trials: Sequence[Trial]) -> list[list[Trial]]:
        """``trials`` in the groups that train together (one vmap batch): per config, the
        sweep's seeds in chunks of ``seeds_per_group``, each chunk keeping only the trials
        given. The chunks depend on the plan alone — not on the backend or the number of
        cores — so every backend batches the same seeds and gets the same numbers (vmap's
        batched matrix products may round differently for a different batch)."""
        wanted = {t.trial_id for t in trials}
        out = []
        for config in self.configs:
            for i in range(0, len(self.seeds), self.seeds_per_group):
                chunk = [Trial(config, s) for s in self.seeds[i : i + self.seeds_per_group]]
                chunk = [t for t in chunk if t.trial_id in wanted]
                if chunk:
                    out.append(chunk)
        return out

    def trial(self, trial_id: str) -> Trial:
        for t in self.trials:
            if t.trial_id == trial_id:
                return t
        raise KeyError(f"no trial {trial_id!r} in this sweep")
