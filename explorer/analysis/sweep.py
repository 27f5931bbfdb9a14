"""Analysis over a sweep's trials (a :class:`~explorer.train.sweep.SweepResult`), from their
final evaluations (see :class:`~explorer.train.sweep.results.FinalEvaluation`):

- :func:`seed_cka` — linear CKA between the final representations of every pair of seeds of
  each config; :func:`config_cka` — between every pair of configs under each seed. Streamed:
  at most ``2 × block`` trials' representations are in memory at once, so 100 trials never
  are; the CKA itself is :func:`explorer.analysis.alignment.cka_matrix`, on representations
  stored as captured and pooled here (``pool``, as everywhere: default ``"mean"``).
- :func:`seed_disagreement` — per test example and config, how often independently trained
  seeds disagree and how often they are wrong (R5: disagreement tracks error), with
  :func:`disagreement_summary` per config.

The sweep itself comes from :mod:`explorer.train.sweep` (read here through its result object:
analysis does not import training).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from safetensors import safe_open

from explorer.analysis.alignment import cka_matrix
from explorer.analysis.pooling import Pool, pool_features
from explorer.validation import check_positive_int

if TYPE_CHECKING:
    from explorer.train.sweep import SweepResult, Trial

__all__ = ["config_cka", "disagreement_summary", "seed_cka", "seed_disagreement", "stream_cka"]


def _finished(result: SweepResult) -> list[Trial]:
    """Planned trials that have a final evaluation, in plan order."""
    return [t for t in result.planned() if result.store.final_path(t.trial_id).is_file()]


def _layer(result: SweepResult, trials: list[Trial], layer: str | None) -> str:
    if not trials:
        raise ValueError("no trial of this sweep has finished yet: nothing to compare")
    path = result.store.final_path(trials[0].trial_id)
    with safe_open(str(path), framework="np") as f:
        layers = [k[len("reps.") :] for k in f.keys() if k.startswith("reps.")]
    if not layers:
        raise ValueError(
            "the trials stored no representations (a model without hook points?); run the "
            "sweep with layers=[...] naming hook points of the model"
        )
    if layer is None:
        return layers[-1]
    if layer not in layers:
        raise ValueError(f"layer {layer!r} was not stored; the trials hold {layers}")
    return layer


def _loader(result: SweepResult, layer: str, pool: Pool) -> Callable[[str], np.ndarray]:
    def load(trial_id: str) -> np.ndarray:
        with safe_open(str(result.store.final_path(trial_id)), framework="np") as f:
            return np.asarray(pool_features(f.get_tensor(f"reps.{layer}"), pool))

    return load


def _constant(x: np.ndarray) -> bool:
    return bool(np.all(x == x[:1]))


def stream_cka(
    load: Callable[[str], np.ndarray],
    ids: Sequence[str],
    *,
    block: int = 8,
    debiased: bool = False,
) -> np.ndarray:
    """Symmetric (m, m) linear CKA between the representations ``load(id)`` of ``ids``,
    loading ``block`` of them at a time (at most 2·block in memory). A constant
    representation (a dead layer) has no CKA: its row and column are NaN."""
    block = check_positive_int(block, "block")
    m = len(ids)
    out = np.full((m, m), np.nan)

    def fill(i0: int, rows: list[np.ndarray], j0: int, cols: list[np.ndarray] | None) -> None:
        ri = [i for i, x in enumerate(rows) if not _constant(x)]
        if cols is None:
            part = cka_matrix([rows[i] for i in ri], debiased=debiased) if ri else None
            for a, i in enumerate(ri):
                for b, j in enumerate(ri):
                    out[i0 + i, i0 + j] = part[a, b]  # type: ignore[index]
            return
        ci = [j for j, x in enumerate(cols) if not _constant(x)]
        if not ri or not ci:
            return
        part = cka_matrix([rows[i] for i in ri], [cols[j] for j in ci], debiased=debiased)
        for a, i in enumerate(ri):
            for b, j in enumerate(ci):
                out[i0 + i, j0 + j] = out[j0 + j, i0 + i] = part[a, b]

    for i0 in range(0, m, block):
        rows = [load(t) for t in ids[i0 : i0 + block]]
        fill(i0, rows, i0, None)
        for j0 in range(i0 + block, m, block):
            cols = [load(t) for t in ids[j0 : j0 + block]]
            fill(i0, rows, j0, cols)
            del cols  # freed before the next block loads
        del rows
    return out


def seed_cka(
    result: SweepResult,
    *,
    layer: str | None = None,
    pool: Pool = "mean",
    debiased: bool = False,
    block: int = 8,
) -> pd.DataFrame:
    """Seed × seed linear CKA of the final representations at ``layer`` (default: the last
    stored; token sequences and maps pooled by ``pool``), for every config. Tidy: config
    columns, seed_a, seed_b, metric, value (both orders and the diagonal, so a pivot gives
    the full matrix; NaN for a trial whose layer is dead, i.e. constant over the inputs)."""
    trials = _finished(result)
    layer = _layer(result, trials, layer)
    load = _loader(result, layer, pool)
    rows = []
    by_config: dict[str, list[Trial]] = {}
    for t in trials:
        by_config.setdefault(t.config_id, []).append(t)
    for group in by_config.values():
        m = stream_cka(load, [t.trial_id for t in group], block=block, debiased=debiased)
        for (i, a), (j, b) in itertools.product(enumerate(group), repeat=2):
            rows.append({**a.config, "seed_a": a.seed, "seed_b": b.seed, "metric": "linear CKA",
                         "value": float(m[i, j])})  # fmt: skip
    return pd.DataFrame(rows, columns=[*result.swept, "seed_a", "seed_b", "metric", "value"])


def _config_label(trial: Trial) -> str:
    """``"width=8, lr=0.01"`` (``"all"`` for a seeds-only sweep)."""
    return trial.label().rsplit(", seed", 1)[0] if trial.config else "all"


def config_cka(
    result: SweepResult,
    *,
    seeds: Sequence[int] | None = None,
    layer: str | None = None,
    pool: Pool = "mean",
    debiased: bool = False,
    block: int = 8,
) -> pd.DataFrame:
    """Config × config linear CKA of the final representations under each seed in ``seeds``
    (default: every seed). Tidy: seed, config_a, config_b (labels such as ``"width=8,
    lr=0.01"``), metric, value; average over seeds with ``groupby(["config_a",
    "config_b"]).value.mean()``."""
    trials = _finished(result)
    layer = _layer(result, trials, layer)
    load = _loader(result, layer, pool)
    wanted = set(result.spec["seeds"] if seeds is None else seeds)
    rows = []
    for seed in sorted(wanted):
        group = [t for t in trials if t.seed == seed]
        if not group:
            continue
        m = stream_cka(load, [t.trial_id for t in group], block=block, debiased=debiased)
        for (i, a), (j, b) in itertools.product(enumerate(group), repeat=2):
            rows.append({"seed": seed, "config_a": _config_label(a),
                         "config_b": _config_label(b), "metric": "linear CKA",
                         "value": float(m[i, j])})  # fmt: skip
    return pd.DataFrame(rows, columns=["seed", "config_a", "config_b", "metric", "value"])


def seed_disagreement(result: SweepResult) -> pd.DataFrame:
    """Per config and test example: ``disagreement`` and ``error`` across the config's seeds.

    Classification (cross-entropy): disagreement = fraction of seed pairs predicting different
    classes, error = fraction of seeds predicting the wrong class. Regression: disagreement =
    standard deviation of the seeds' predictions, error = mean absolute error (both averaged
    over output columns). Configs with fewer than two finished seeds are left out. Tidy:
    config columns, example, metric (disagreement | error), value.
    """
    by_config: dict[str, list[Trial]] = {}
    for t in _finished(result):
        by_config.setdefault(t.config_id, []).append(t)
    parts = []
    for group in by_config.values():
        if len(group) < 2:
            continue
        evs = [result.evaluation(t.trial_id) for t in group]
        dis, err = _disagreement(
            np.stack([e.predictions for e in evs]), evs[0].targets, evs[0].loss
        )
        n = len(dis)
        frame = pd.DataFrame({"example": np.tile(np.arange(n), 2),
                              "metric": np.repeat(["disagreement", "error"], n),
                              "value": np.concatenate([dis, err])})  # fmt: skip
        parts.append(frame.assign(**group[0].config))
    columns = [*result.swept, "example", "metric", "value"]
    if not parts:
        raise ValueError("seed disagreement needs a config with at least two finished seeds")
    return pd.concat(parts, ignore_index=True)[columns]


def _disagreement(
    preds: np.ndarray, targets: np.ndarray, loss: str
) -> tuple[np.ndarray, np.ndarray]:
    """(S, n, C) predictions of S seeds → per-example (disagreement, error)."""
    s = preds.shape[0]
    if loss == "ce":
        labels = preds.argmax(-1)  # (S, n)
        pairs = list(itertools.combinations(range(s), 2))
        dis = np.mean([labels[a] != labels[b] for a, b in pairs], axis=0)
        err = (labels != targets.reshape(1, -1)).mean(0)
        return dis.astype(np.float64), err.astype(np.float64)
    flat = preds.reshape(s, preds.shape[1], -1).astype(np.float64)
    target = targets.reshape(targets.shape[0], -1).astype(np.float64)
    dis = flat.std(0).mean(-1)
    err = np.abs(flat - target[None]).mean((0, 2))
    return dis, err


def disagreement_summary(result: SweepResult) -> pd.DataFrame:
    """Per config: mean seed disagreement and mean error over the test examples, and their
    rank correlation across examples (Spearman; NaN when either is constant)."""
    from scipy.stats import spearmanr

    frame = seed_disagreement(result)
    keys = result.swept
    wide = frame.pivot_table(index=[*keys, "example"], columns="metric", values="value")
    rows = []
    for key, part in wide.groupby(level=list(range(len(keys)))) if keys else [((), wide)]:
        d, e = part["disagreement"].to_numpy(), part["error"].to_numpy()
        rho = float("nan") if d.std() == 0 or e.std() == 0 else float(spearmanr(d, e).statistic)
        cfg = dict(zip(keys, key if isinstance(key, tuple) else (key,)))
        rows.append({**cfg, "disagreement": d.mean(), "error": e.mean(), "spearman": rho})
    return pd.DataFrame(rows, columns=[*keys, "disagreement", "error", "spearman"])
