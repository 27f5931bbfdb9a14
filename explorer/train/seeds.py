"""Train N seeds of one configuration together.

Batched mode stacks the N models' parameters (``torch.func.stack_module_state``) and runs
them in one ``vmap``-ed ``functional_call``: one optimizer over the stacked tensors gives each
seed exactly the update it would get alone (SGD/Adam/AdamW are elementwise; gradient clipping
is done per seed). Models that vmap cannot run (dropout, in-place buffer updates, data-dependent
control flow) or would run slowly (an operator without a batching rule, such as CPU flash
attention) fall back to one :class:`Trainer` per seed, stepped in turn.
"""

from __future__ import annotations

import copy
import dataclasses
import time
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from explorer.device import resolve_device
from explorer.frames import tidy
from explorer.train.config import TaskLike, TrainConfig
from explorer.train.objectives import per_seed_loss, resolve_loss
from explorer.train.optim import build_optimizer, lr_at, set_lr
from explorer.train.state import GoodState, TrainingDiverged, all_finite
from explorer.train.trainer import ModelFactory, Trainer, _uses_dropout, build_seeded, task_tensors
from explorer.validation import check_positive_int

__all__ = ["MultiSeedTrainer", "seed_models"]


class _Stacked(nn.Module):
    """The seeds' parameters and buffers as one module, so GoodState can copy them."""

    def __init__(self, params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor]) -> None:
        super().__init__()
        self.p = nn.ParameterList([nn.Parameter(v) for v in params.values()])
        for i, v in enumerate(buffers.values()):
            self.register_buffer(f"b{i}", v)


class MultiSeedTrainer:
    """Train ``factory(seed)`` (or ``factory()`` under the seed, see ``build_seeded``) once per seed in ``seeds`` on ``task`` under ``config``.

    ``mode="auto"`` tries the batched (vmap) path and falls back to sequential training when
    the model does not allow it; ``"vmap"`` raises instead of falling back; ``"sequential"``
    always trains one model after another. :meth:`step` returns one metric dict per seed (each
    with a ``seed`` key); :meth:`models` returns ordinary modules holding each seed's weights.
    """

    def __init__(
        self,
        factory: ModelFactory,
        task: TaskLike,
        config: TrainConfig | None = None,
        *,
        seeds: Sequence[int] = (0, 1, 2, 3),
        mode: str = "auto",
        **overrides: Any,
    ) -> None:
        if not callable(factory) or isinstance(factory, nn.Module):
            raise TypeError("factory must be a callable building a fresh model: f() or f(seed)")
        seeds = [check_positive_int(s, "seeds", minimum=0) for s in seeds]  # 1.5 is no seed
        if not seeds or len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds must be distinct non-negative integers, got {seeds!r}")
        if mode not in ("auto", "vmap", "sequential"):
            raise ValueError(f"mode must be 'auto', 'vmap' or 'sequential', got {mode!r}")
        config = config or TrainConfig()
        self.config = config.with_(**overrides) if overrides else config
        self.factory, self.task, self.seeds = factory, task, seeds
        self.fallback_reason: str | None = None
        self.mode = "sequential"
        if mode != "sequential":
            try:
                self._init_vmap()
                self.mode = "vmap"
            except Exception as err:
                if mode == "vmap":
                    raise
                self.fallback_reason = f"{type(err).__name__}: {err}"
        if self.mode == "sequential":
            self.trainers = [Trainer(factory, task, self.config.with_(seed=s)) for s in seeds]
        self.global_step = 0
        self.history: list[dict[str, float]] = []

    # ------------------------------------------------------------------ batched path
    def _init_vmap(self) -> None:
        cfg = self.config
        self.device = resolve_device(cfg.device)
        self.loss_name = resolve_loss(self.task, cfg.loss)
        self.data = task_tensors(self.task, self.device, self.loss_name)
        models = [build_seeded(self.factory, s).to(self.device) for s in self.seeds]
        if _uses_dropout(models[0]):
            raise ValueError("the model uses dropout; vmap would share or break its randomness")
        params, buffers = stack_module_state(models)
        self._names = list(params)
        self._buffer_names = list(buffers)
        self._base = copy.deepcopy(models[0]).to("meta")
        self._stack = _Stacked(params, buffers)
        self._params = list(self._stack.p)
        self._buffers = list(self._stack.buffers())
        self.optimizer = build_optimizer(self._params, cfg)
        self._good = GoodState(self._stack, self.optimizer)
        self._gens = [torch.Generator().manual_seed(s) for s in self.seeds]
        self._orders = [torch.empty(0, dtype=torch.long) for _ in self.seeds]
        self._cursor = len(self.data["x_train"])  # the first batch draws a permutation
        self._forward = vmap(self._call_one, in_dims=(0, 0, 0))
        self._forward_shared = vmap(self._call_one, in_dims=(0, 0, None))
        self._trial_run()

    def _trial_run(self) -> None:
        """Forward and backward on two samples (shared, and per seed when training on
        minibatches: the inputs each step uses): raises
        if the model cannot be vmapped (e.g. ``.item()`` on a batched tensor), or if vmap would
        run an operator through torch's per-sample fallback (no batching rule: slower than
        training the seeds one after another, e.g. CPU flash attention)."""
        x = self.data["x_train"][:2]
        minibatches = self.config.batch_size is not None and self.config.batch_size < len(
            self.data["x_train"]
        )
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = self._forward_shared(self._pdict(), self._bdict(), x).float().sum()
            if minibatches:  # each seed its own batch
                per_seed = x.unsqueeze(0).expand(len(self.seeds), *x.shape)
                out = out + self._forward(self._pdict(), self._bdict(), per_seed).float().sum()
            out.backward()
        for p in self._params:
            p.grad = None
        slow = [str(w.message) for w in caught if "batching rule" in str(w.message)]
        if slow:
            raise RuntimeError(f"vmap would use torch's slow per-sample fallback: {slow[0][:200]}")

    def _pdict(self) -> dict[str, torch.Tensor]:
        return dict(zip(self._names, self._params, strict=True))

    def _bdict(self) -> dict[str, torch.Tensor]:
        return dict(zip(self._buffer_names, self._buffers, strict=True))

    def _call_one(
        self, p: dict[str, torch.Tensor], b: dict[str, torch.Tensor], x: torch.Tensor
    ) -> Any:
        return functional_call(self._base, (p, b), (x,))

    def _batch_indices(self) -> torch.Tensor | None:
        bs, n = self.config.batch_size, len(self.data["x_train"])
        if bs is None or bs >= n:
            return None
        if self._cursor + bs > n:
            self._orders = [torch.randperm(n, generator=g) for g in self._gens]
            self._cursor = 0
        idx = torch.stack([o[self._cursor : self._cursor + bs] for o in self._orders])
        self._cursor += bs
        return idx.to(self.device)

    def _clip_per_seed(self) -> torch.Tensor:
        """Per-seed global gradient norms (S,), clipping each seed to ``grad_clip``."""
        grads = [p.grad for p in self._params if p.grad is not None]
        sq = torch.stack([g.reshape(g.shape[0], -1).double().pow(2).sum(1) for g in grads]).sum(0)
        norms = sq.sqrt()
        if self.config.grad_clip is not None:
            scale = (self.config.grad_clip / (norms + 1e-6)).clamp(max=1.0).float()
            for g in grads:
                g.mul_(scale.view(-1, *([1] * (g.ndim - 1))))
        return norms

    def _step_vmap(self) -> list[dict[str, float]]:
        step = self.global_step
        idx = self._batch_indices()
        x, y = self.data["x_train"], self.data["y_train"]
        self.optimizer.zero_grad(set_to_none=True)
        if idx is None:
            out = self._forward_shared(self._pdict(), self._bdict(), x)
            ys = y.expand(len(self.seeds), *y.shape)
        else:
            out = self._forward(self._pdict(), self._bdict(), x[idx])
            ys = y[idx]
        losses, accs = per_seed_loss(out, ys, self.loss_name)
        values = losses.detach().cpu().numpy()
        if not np.isfinite(values).all():
            self._diverge(f"the training loss became non-finite for seed(s) {self._bad(values)}")
        self._good.save(step)
        losses.sum().backward()
        norms = self._clip_per_seed().cpu().numpy()
        if not np.isfinite(norms).all() or not all_finite(
            [p.grad for p in self._params if p.grad is not None]
        ):
            self._diverge(f"the gradient became non-finite for seed(s) {self._bad(norms)}")
        lr = lr_at(step, self.config)
        set_lr(self.optimizer, lr)
        self.optimizer.step()
        acc = None if accs is None else accs.detach().cpu().numpy()
        rows = []
        for i, s in enumerate(self.seeds):
            row = {
                "seed": s,
                "step": step + 1,
                "loss": float(values[i]),
                "lr": lr,
                "grad_norm": float(norms[i]),
            }
            if acc is not None:
                row["acc"] = float(acc[i])
            rows.append(row)
        return rows

    def _bad(self, values: np.ndarray) -> list[int]:
        return [s for s, v in zip(self.seeds, values, strict=True) if not np.isfinite(v)]

    def _diverge(self, what: str) -> None:
        failed = self.global_step
        restored = self._good.restore() if self._good.step >= 0 else failed
        self.optimizer.zero_grad(set_to_none=True)
        self.global_step = restored
        self.history = [h for h in self.history if h["step"] <= restored]
        raise TrainingDiverged(
            f"Diverged: {what} at step {failed}. Restored the weights from step {restored}.",
            failed,
            restored,
        )

    @torch.no_grad()
    def _evaluate_vmap(self) -> list[dict[str, float]]:
        rows: list[dict[str, float]] = [{} for _ in self.seeds]
        for split in ("train", "test"):
            n = self.config.eval_samples
            x, y = self.data[f"x_{split}"][:n], self.data[f"y_{split}"][:n]
            if len(x) == 0:
                continue
            out = self._forward_shared(self._pdict(), self._bdict(), x)
            losses, accs = per_seed_loss(out, y.expand(len(self.seeds), *y.shape), self.loss_name)
            for i in range(len(self.seeds)):
                rows[i][f"{split}_loss"] = float(losses[i])
                if accs is not None:
                    rows[i][f"{split}_acc"] = float(accs[i])
        return rows

    # ------------------------------------------------------------------ public
    def step(self) -> list[dict[str, float]]:
        """One update of every seed; one metric dict per seed, in ``seeds`` order."""
        t0 = time.perf_counter()
        if self.mode == "vmap":
            rows = self._step_vmap()
            self.global_step += 1
            if self.global_step % self.config.eval_every == 0 or self.global_step == 1:
                for row, ev in zip(rows, self._evaluate_vmap(), strict=True):
                    row.update(ev)
        else:
            rows = []
            for s, trainer in zip(self.seeds, self.trainers, strict=True):
                rows.append({"seed": s, **trainer.step()})
            self.global_step += 1
        elapsed = time.perf_counter() - t0
        for row in rows:
            row["seconds"] = elapsed
        self.history.extend(rows)
        return rows

    def run(self, n: int) -> Iterator[list[dict[str, float]]]:
        """Yield the per-seed metrics of ``n`` steps."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"n must be an integer >= 0, got {n!r}")
        for _ in range(int(n)):
            yield self.step()

    def models(self) -> list[nn.Module]:
        """One ordinary module per seed holding that seed's current weights (copies)."""
        if self.mode == "sequential":
            return [copy.deepcopy(t.model) for t in self.trainers]
        out = []
        for i, s in enumerate(self.seeds):
            model = build_seeded(self.factory, s).to(self.device)
            state = {
                n: p[i].detach().clone() for n, p in zip(self._names, self._params, strict=True)
            }
            state.update(
                {n: b[i].clone() for n, b in zip(self._buffer_names, self._buffers, strict=True)}
            )
            model.load_state_dict(state)
            out.append(model)
        return out

    # ------------------------------------------------------------------ per-seed trainers
    def seed_trainer(self, seed: int, *, into: Trainer | None = None) -> Trainer:
        """A :class:`Trainer` holding ``seed``'s current state: weights, optimizer state, step,
        history and minibatch order, so it can be recorded, checkpointed or trained on alone
        (and continues exactly as the batched run would). In vmap mode it is an independent
        copy — written ``into`` a trainer of this seed from an earlier call when given (no
        model or optimizer is built again); in sequential mode it is the seed's own trainer
        (stepping it moves this one)."""
        if seed not in self.seeds:
            raise ValueError(f"seed {seed!r} is not one of this trainer's seeds {self.seeds}")
        i = self.seeds.index(seed)
        if self.mode == "sequential":
            return self.trainers[i]
        if into is not None and (into._source is not self.factory or into.config.seed != seed):
            raise ValueError("into= must be a trainer of this seed from seed_trainer()")
        trainer = into or Trainer(self.factory, self.task, self.config.with_(seed=seed))
        with torch.no_grad():
            for mine, stacked in zip(trainer.model.parameters(), self._params, strict=True):
                mine.copy_(stacked[i])
            for buf, stacked in zip(trainer.model.buffers(), self._buffers, strict=True):
                buf.copy_(stacked[i])
        for mine, stacked in zip(trainer.model.parameters(), self._params, strict=True):
            state = self.optimizer.state.get(stacked, {})
            trainer.optimizer.state[mine] = {k: _slice(k, v, stacked, i) for k, v in state.items()}
        trainer.global_step = self.global_step
        trainer.history = [
            {k: v for k, v in h.items() if k != "seed"} for h in self.history if h["seed"] == seed
        ]
        trainer._batch_gen.set_state(self._gens[i].get_state())
        if len(self._orders[i]):
            trainer._order, trainer._cursor = self._orders[i].clone(), self._cursor
        return trainer

    @classmethod
    def from_trainers(cls, trainers: Sequence[Trainer], *, mode: str = "auto") -> MultiSeedTrainer:
        """Batch trainers of one configuration that stand at the same step (e.g. seeds resumed
        from their checkpoints, or the seeds left after one diverged): the result continues
        each exactly as it would have continued alone. Each trainer must be built from a model
        factory under its own ``config.seed``, on the same task and configuration."""
        trainers = list(trainers)
        if not trainers:
            raise ValueError("from_trainers needs at least one Trainer")
        first = trainers[0]
        source = first._source
        if isinstance(source, nn.Module):
            raise TypeError("from_trainers needs trainers built from a model factory, not a module")
        for t in trainers[1:]:
            if t._source is not source or t.task is not first.task:
                raise ValueError("every trainer must share the same model factory and task object")
            if t.config.with_(seed=0) != first.config.with_(seed=0):
                raise ValueError("every trainer must have the same TrainConfig apart from seed")
            if t.global_step != first.global_step:
                raise ValueError(
                    f"every trainer must stand at the same step, got "
                    f"{sorted({x.global_step for x in trainers})}"
                )
        seeds = [t.config.seed for t in trainers]
        batched = cls(source, first.task, first.config, seeds=seeds, mode=mode)
        batched._load(trainers)
        return batched

    def _load(self, trainers: list[Trainer]) -> None:
        self.global_step = trainers[0].global_step
        self.history = sorted(
            ({"seed": t.config.seed, **h} for t in trainers for h in t.history),
            key=lambda h: (h["step"], self.seeds.index(int(h["seed"]))),
        )
        if self.mode == "sequential":
            self.trainers = trainers
            return
        with torch.no_grad():
            for i, t in enumerate(trainers):
                for stacked, theirs in zip(self._params, t.model.parameters(), strict=True):
                    stacked[i].copy_(theirs)
                for buf, their_buf in zip(self._buffers, t.model.buffers(), strict=True):
                    buf[i].copy_(their_buf)
        for j, stacked in enumerate(self._params):
            states = [t.optimizer.state.get(list(t.model.parameters())[j], {}) for t in trainers]
            if states[0]:
                self.optimizer.state[stacked] = {
                    k: _stack(k, [s[k] for s in states], stacked) for k in states[0]
                }
        for gen, t in zip(self._gens, trainers, strict=True):
            gen.set_state(t._batch_gen.get_state())
        if len(trainers[0]._order):
            self._orders = [t._order.clone() for t in trainers]
            self._cursor = trainers[0]._cursor
        else:
            self._cursor = len(self.data["x_train"])

    def history_frame(self) -> pd.DataFrame:
        """Tidy history: (seed, step, metric, value)."""
        return tidy(
            {"seed": int(h["seed"]), "step": int(h["step"]), "metric": k, "value": float(v)}
            for h in self.history
            for k, v in h.items()
            if k not in ("seed", "step")
        )


# Optimizer state entries that are one value for all seeds (the seeds step together).
_SHARED_STATE = ("step",)


def _slice(key: str, value: Any, stacked: torch.Tensor, i: int) -> Any:
    """Seed ``i``'s part of optimizer state entry ``key`` of a stacked parameter."""
    if (
        key not in _SHARED_STATE
        and isinstance(value, torch.Tensor)
        and value.shape == stacked.shape
    ):
        return value[i].clone()
    return value.clone() if isinstance(value, torch.Tensor) else copy.deepcopy(value)


def _stack(key: str, values: list[Any], stacked: torch.Tensor) -> Any:
    """Optimizer state entry ``key`` of a stacked parameter from the seeds' own entries."""
    first = values[0]
    if key not in _SHARED_STATE and isinstance(first, torch.Tensor):
        if first.shape == stacked.shape[1:]:
            return torch.stack(values).to(stacked.device)
    return first.clone() if isinstance(first, torch.Tensor) else copy.deepcopy(first)


def seed_models(
    model: nn.Module | ModelFactory,
    task: TaskLike,
    config: TrainConfig | None,
    seeds: Sequence[int],
    steps: int,
) -> dict[int, nn.Module]:
    """Train fresh models of ``model``'s architecture under other ``seeds`` for ``steps`` steps.

    ``model``: a factory ``f(seed)`` (or ``f()``, see :func:`build_seeded`), or a built-in
    model whose config dataclass has a ``seed`` field (rebuilt with that seed replaced).
    Training uses :class:`MultiSeedTrainer` on ``task`` under ``config`` (batched with vmap
    where possible). Returns seed → trained model.
    """
    if isinstance(model, nn.Module):
        cfg = getattr(model, "config", None)
        if (
            cfg is None
            or not dataclasses.is_dataclass(cfg)
            or isinstance(cfg, type)
            or "seed" not in {f.name for f in dataclasses.fields(cfg)}
        ):
            raise TypeError(
                f"{type(model).__name__} has no config dataclass with a seed; pass a factory "
                "f(seed) that builds your model instead"
            )
        arch, base = type(model), cfg

        def factory(seed: int) -> nn.Module:
            return arch(dataclasses.replace(base, seed=seed))

    elif callable(model):
        factory = model  # type: ignore[assignment]
    else:
        raise TypeError(f"model must be an nn.Module or a factory, got {type(model).__name__}")
    steps = check_positive_int(steps, "steps", minimum=0)
    seeds = [check_positive_int(s, "every seed", minimum=0) for s in seeds]
    if not seeds:
        raise ValueError("seeds is empty: pass at least one integer seed")
    trainer = MultiSeedTrainer(factory, task, config, seeds=seeds)
    for _ in trainer.run(steps):
        pass
    return dict(zip(trainer.seeds, trainer.models()))
