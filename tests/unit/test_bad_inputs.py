"""Bad input at every public analysis function: a clear ValueError/TypeError or a finite result,
never a silent NaN or garbage (issue 19).

The functions come from the lenses' ``__all__``: a new public function without a recipe below
fails :func:`test_every_public_function_has_a_recipe`, so none is left out. A recipe says how to
call the function validly from a set of named inputs (``Data``); two checks then vary one input
or one parameter at a time:

- the **census** (deterministic): every input variant that must be rejected (complex, bool,
  object, string, NaN, inf; every numeric parameter at NaN, ±inf, a bool, a string and, unless it
  is an index, −1; every choice parameter at an unknown value) and the extreme magnitudes 1e±170.
  ``pytest -s -k census`` prints the count of clear errors out of the inputs tried;
- **hypothesis**: arrays of random shape, dtype and values (NaN, inf, huge, tiny, constant rows,
  duplicates) for each function's first array argument.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import warnings
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import explorer.analysis as an
import explorer.data as data_tasks
from explorer.analysis import alignment as al
from explorer.analysis import attention as at
from explorer.analysis import geometry as geo
from explorer.analysis import spectra as sp
from explorer.errors import ExplorerWarning
from explorer.models import MLP, MLPConfig

LENSES = {"analysis": an, "alignment": al, "geometry": geo, "spectra": sp, "attention": at}
RESULT_TYPES = {
    "analysis.Metric", "geometry.Curvature", "geometry.Neighbors", "geometry.PositionContext",
    "spectra.FourierSweep", "spectra.PowerLawFit", "spectra.Spectrum",
    "attention.AttentionPatterns",
}  # fmt: skip
NEGATIVE_OK = {"layer", "axis", "query", "head", "batch_index"}  # Python-style indices
CHOICES = {"pool", "metric", "method", "kind", "summary", "rule", "estimator", "statistic",
           "route", "head_reduce", "compare", "variant", "device"}  # fmt: skip


# ------------------------------------------------------------------------------ inputs


def _stochastic(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    a = rng.random(shape) + 0.05
    return a / a.sum(-1, keepdims=True)


def _base_data() -> dict[str, Any]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(24, 5))
    y = x @ rng.normal(size=(5, 4)) + 0.3 * rng.normal(size=(24, 4))
    signal = np.sin(np.linspace(0, 12, 32))[None] * np.arange(1, 4)[:, None]
    signal = signal + 0.1 * rng.normal(size=(3, 32))
    return {
        "x": x,
        "y": y,
        "labels": np.repeat(np.arange(3), 8),
        "seq": rng.normal(size=(6, 5, 4)),
        "signal": signal,
        "image": rng.normal(size=(2, 16, 16)),
        "attn": _stochastic((2, 2, 6, 6), rng),
        "w": rng.normal(size=(12, 10)),
        "values": np.sort(rng.pareto(2.0, size=300) + 1.0),
        "reps": {"a": x, "b": y, "c": np.tanh(x)},
        "grid_values": rng.normal(size=(64, 2)),
        "logits": rng.normal(size=(5, 5, 3)),
        "layouts": [rng.normal(size=(10, 2)), rng.normal(size=(10, 2))],
        "edges": np.array([[0, 1], [1, 2], [2, 3], [3, 0], [0, 2]]),
        "kernel": rng.normal(size=(2, 5)),
        "mixer": _stochastic((6, 6), rng),
        "maps": rng.normal(size=(2, 3, 8, 8)),
        "texts": ["a small cat", "the dog sat down", "green ideas sleep"],
        "anchors": x[:4] + 0.5,
        "inputs": x.astype(np.float32),
        "model": MLP(MLPConfig(in_dim=5, out_dim=3, depth=2, width=12, seed=0)),
        "classifier": rng.normal(size=(3, 5)),
        "bias": rng.normal(size=3),
        "spectrum": sp.power_spectrum(signal[0]),
        "tokens_in": rng.normal(size=(5, 3)),
        "vit_attn": _stochastic((2, 2, 5, 5), rng),
        "propagation": _stochastic((24, 24), rng),
        "grid_mixer": _stochastic((2, 6, 6), rng),
    }


def _task() -> Any:
    from explorer.data import signal_1d

    return signal_1d(n=32, frequencies=(1, 4))


_LM: list[Any] = []


def _lm() -> Any:
    """all-MiniLM-L6-v2 (loaded once): text getters validate ``texts`` against the real model."""
    if not _LM:
        from explorer.models import load_minilm

        _LM.append(load_minilm())
    return _LM[0]


# ------------------------------------------------------------------------------ recipes

Recipe = Callable[..., Any]  # (data, **parameters) → result
RECIPES: dict[str, tuple[tuple[str, ...], Recipe]] = {}  # name → (inputs it varies, call)


def recipe(name: str, uses: str, call: Recipe) -> None:
    RECIPES[name] = (tuple(uses.split()), call)


def _kw(defaults: dict[str, Any], kw: dict[str, Any]) -> dict[str, Any]:
    return {**defaults, **kw}


def on(fn: Callable[..., Any], *fields: str, **fixed: Any) -> Recipe:
    """Call ``fn`` with the named inputs as positional arguments, then ``fixed`` keywords
    overridden by the census's."""
    return lambda d, **kw: fn(*(d[f] for f in fields), **{**fixed, **kw})


for _n in ("linear_cka", "rbf_cka", "bures_similarity", "canonical_correlations",
           "cca_similarity", "pwcca", "linearity_score", "match_units", "permutation_distance",
           "procrustes_distance", "rsa", "mutual_knn", "cknna", "svcca", "aligned_projection",
           "minibatch_cka", "linear_predictivity"):  # fmt: skip
    recipe(f"alignment.{_n}", "x y", on(getattr(al, _n), "x", "y"))
for _n in ("effective_rank", "participation_ratio", "stable_rank", "rank_me",
           "von_neumann_entropy", "eigen_decay", "coding_rate", "twonn"):  # fmt: skip
    recipe(f"geometry.{_n}", "x", on(getattr(geo, _n), "x"))
for _n in ("mle_id", "local_pca_id", "local_id", "ollivier_ricci"):
    recipe(f"geometry.{_n}", "x", on(getattr(geo, _n), "x", k=5))
for _n in ("esd", "singular_values", "zp_fourier_power"):
    recipe(f"spectra.{_n}", "w", on(getattr(sp, _n), "w"))
for _n in ("as_patterns", "attention_rollout", "mixing_matrices", "head_statistics",
           "attention_flow"):  # fmt: skip
    recipe(f"attention.{_n}", "attn", on(getattr(at, _n), "attn"))
for _n in ("band_power", "fourier_concentration", "high_frequency_share", "key_frequencies",
           "spectral_centroid"):  # fmt: skip
    recipe(f"spectra.{_n}", "spectrum", on(getattr(sp, _n), "spectrum"))


recipe("analysis.pool_features", "seq", on(an.pool_features, "seq"))
recipe(
    "alignment.StreamingCKA",
    "x y",
    lambda d, **kw: al.StreamingCKA(**kw).update(d["x"], d["y"]).cka(),
)
recipe("alignment.cka_matrix", "reps", on(al.cka_matrix, "reps"))
recipe("alignment.similarity_matrix", "reps", on(al.similarity_matrix, "reps", metric="procrustes"))
recipe("alignment.compare", "reps", on(al.compare, "reps", metrics=("cka", "rsa")))
recipe("alignment.cosine_knn", "x", on(al.cosine_knn, "x", k=3))
recipe("alignment.layer_representations", "reps", on(al.layer_representations, "reps"))
recipe("alignment.rdm", "x", on(al.rdm, "x"))
recipe(
    "alignment.relative_representation", "x anchors", on(al.relative_representation, "x", "anchors")
)
recipe(
    "alignment.zero_shot_stitching",
    "x y labels",
    on(al.zero_shot_stitching, "x", "y", "labels", anchors=4),
)
recipe("alignment.model_representations", "inputs", on(al.model_representations, "model", "inputs"))
recipe(
    "alignment.text_representations",
    "texts",
    lambda d, **kw: al.text_representations(_lm(), d["texts"], **kw),
)
recipe(
    "geometry.PCA",
    "x",
    lambda d, **kw: geo.PCA(**_kw({"method": "randomized"}, kw)).fit_transform(d["x"]),
)
recipe("geometry.project", "x", on(geo.project, "x"))
recipe(
    "geometry.align_snapshots", "layouts", lambda d, **kw: geo.align_snapshots(d["layouts"], **kw)
)
recipe(
    "geometry.procrustes_align",
    "x",
    lambda d, **kw: geo.procrustes_align(d["x"], d["x"][::-1], **kw),
)
recipe(
    "geometry.class_means", "x labels", lambda d, **kw: geo.class_means(d["x"], d["labels"], **kw)
)
recipe(
    "geometry.neural_collapse",
    "x labels classifier bias",
    on(geo.neural_collapse, "x", "labels", "classifier", "bias"),
)
recipe("geometry.rate_reduction", "x labels", on(geo.rate_reduction, "x", "labels"))
recipe(
    "geometry.geometry_profile",
    "reps labels",
    lambda d, **kw: geo.geometry_profile(d["reps"], **{"labels": d["labels"], "k": 5, **kw}),
)
recipe(
    "geometry.geometry_over_training",
    "reps",
    lambda d, **kw: geo.geometry_over_training(
        [(0, d["reps"])], **_kw({"metrics": ["twonn"], "k": 5}, kw)
    ),
)
recipe("geometry.graph_curvature", "edges", on(geo.graph_curvature, "edges"))
recipe("geometry.knn", "x", on(geo.knn, "x", k=3))
recipe("geometry.knn_graph", "x", lambda d, **kw: geo.knn_graph(geo.knn(d["x"], 3), **kw))
recipe(
    "geometry.propagate", "x propagation", on(geo.propagate, "propagation", "x", depths=(0, 1, 3))
)
recipe("geometry.position_context", "seq", on(geo.position_context, "seq"))
recipe("geometry.model_points", "inputs", on(geo.model_points, "model", "inputs"))
recipe("geometry.token_states", "texts", lambda d, **kw: geo.token_states(_lm(), d["texts"], **kw))
recipe("spectra.power_spectrum", "signal", on(sp.power_spectrum, "signal"))
recipe("spectra.esd_metrics", "values", on(sp.esd_metrics, "values"))
recipe(
    "spectra.feature_map_spectra", "maps", lambda d, **kw: sp.feature_map_spectra(d["maps"], **kw)
)
recipe("spectra.fit_power_law", "values", on(sp.fit_power_law, "values", n_bootstrap=2))
recipe(
    "spectra.fourier_feature_sweep",
    "",
    lambda d, **kw: sp.fourier_feature_sweep(
        _task(),
        **_kw({"sigmas": [1.0, 4.0], "width": 8, "depth": 1, "n_fourier": 4, "steps": 2}, kw),
    ),
)
recipe("spectra.grid_maps", "grid_values", on(sp.grid_maps, "grid_values", shape=(8, 8)))
recipe(
    "spectra.kernel_frequency_response",
    "kernel",
    on(sp.kernel_frequency_response, "kernel", n_fft=16),
)
recipe(
    "spectra.layer_esds", "", lambda d, **kw: sp.layer_esds(d["model"], **_kw({"min_dim": 2}, kw))
)
recipe("spectra.layer_spectra", "maps", lambda d, **kw: sp.layer_spectra({"m": d["maps"]}, **kw))
recipe(
    "spectra.layer_spectra_frame",
    "maps",
    lambda d, **kw: sp.layer_spectra_frame(sp.layer_spectra({"m": d["maps"]}), **kw),
)
recipe("spectra.logit_fourier_power", "logits", on(sp.logit_fourier_power, "logits"))
recipe("spectra.mean_power_2d", "image", on(sp.mean_power_2d, "image"))
recipe(
    "spectra.grid_mixing_response",
    "grid_mixer",
    on(sp.grid_mixing_response, "grid_mixer", grid=(2, 3)),
)
recipe("spectra.permute_rows", "mixer", on(sp.permute_rows, "mixer"))
recipe("spectra.mixing_frequency_response", "mixer", on(sp.mixing_frequency_response, "mixer"))
recipe(
    "spectra.psnr",
    "grid_values",
    lambda d, **kw: sp.psnr(d["grid_values"], 2.0 * d["grid_values"], **kw),  # never equal
)
recipe("spectra.radial_power_spectrum", "image", on(sp.radial_power_spectrum, "image"))
recipe(
    "spectra.repeated_peak_prominence", "image", on(sp.repeated_peak_prominence, "image", copies=4)
)
recipe(
    "spectra.residual_history",
    "grid_values",
    lambda d, **kw: sp.residual_history(
        np.stack([0.5 * d["grid_values"], d["grid_values"][::-1]]), d["grid_values"], (8, 8), **kw
    ),
)
recipe(
    "spectra.residual_spectrum",
    "signal",
    lambda d, **kw: sp.residual_spectrum(d["signal"], d["signal"][::-1], **kw),
)
recipe(
    "spectra.spectrum_distance",
    "signal",
    lambda d, **kw: sp.spectrum_distance(d["signal"], d["signal"][::-1], **kw),
)
recipe("spectra.weight_matrices", "", on(sp.weight_matrices, "model", min_dim=2))
recipe("spectra.weight_spectra", "", on(sp.weight_spectra, "model", min_dim=2))
recipe(
    "attention.head_statistics_over_steps",
    "attn",
    lambda d, **kw: at.head_statistics_over_steps([(0, d["attn"]), (5, d["attn"])], **kw),
)
recipe("attention.induction_targets", "", lambda d, **kw: at.induction_targets(list("abcab"), **kw))
recipe("attention.patch_positions", "", on(at.patch_positions, grid=(2, 3), n_prefix=0))
recipe(
    "attention.pool_maps", "image", lambda d, **kw: at.pool_maps(d["image"], **_kw({"size": 4}, kw))
)
recipe(
    "attention.token_mixing",
    "tokens_in",
    lambda d, **kw: at.token_mixing(lambda z: z.cumsum(-2), d["tokens_in"], **kw),
)
recipe("attention.vit_attention_map", "vit_attn", on(at.vit_attention_map, "vit_attn", grid=(2, 2)))


# ------------------------------------------------------------------------------ variants

MAGNITUDE = ("x", "y", "seq", "signal", "image", "w", "values", "reps", "grid_values",
             "logits", "kernel", "maps", "layouts", "anchors", "inputs", "tokens_in")  # fmt: skip


def _map(value: Any, fn: Callable[[np.ndarray], Any]) -> Any:
    """Apply ``fn`` to every array in ``value`` (an array, a mapping or a list of arrays)."""
    if isinstance(value, Mapping):
        return {k: fn(np.asarray(v, dtype=float)) for k, v in value.items()}
    if isinstance(value, list):
        return [fn(np.asarray(v, dtype=float)) for v in value]
    return fn(np.asarray(value, dtype=float))


def _with(a: np.ndarray, where: int, value: float) -> np.ndarray:
    out = a.copy()
    out.flat[where] = value
    return out


def must_reject(field: str, value: Any) -> dict[str, Any]:
    """Variants of one input that every public function must refuse with a clear error."""
    if field == "labels":
        y = np.asarray(value)
        return {
            "complex": y + 1j, "NaN": _with(y.astype(float), 0, np.nan),
            "fractional": y + 0.5, "wrong length": y[:-1],
        }  # fmt: skip
    if field == "edges":
        e = np.asarray(value)
        return {"fractional": e + 0.5, "negative": e - 9, "complex": e + 0j, "bool": e > 0}
    if field == "texts":
        return {"numbers": [1, 2, 3], "empty": [], "empty string": ["", "a b"], "str": "abc"}
    if field == "spectrum":
        return {
            "array": value.power,
            "NaN power": dataclasses.replace(value, power=_with(value.power, 1, np.nan)),
        }
    if field in ("attn", "vit_attn"):  # attention probabilities
        a = np.asarray(value)
        extra = {"negative": _with(a, 0, -0.5)}
    else:
        extra = {}
    return {
        "complex": _map(value, lambda a: a + 1j * a),
        "bool": _map(value, lambda a: a > 0),
        "torch bool": _map(value, lambda a: torch.as_tensor(a > 0)),
        "object": _map(value, lambda a: a.astype(object)),
        "str": _map(value, lambda a: a.astype(str)),
        "NaN": _map(value, lambda a: _with(a, 0, np.nan)),
        "inf": _map(value, lambda a: _with(a, a.size - 1, np.inf)),
        **extra,
    }


def _annotation(fn: Any, name: str) -> str:
    target = fn.__init__ if inspect.isclass(fn) else fn
    return str(inspect.signature(target).parameters[name].annotation)


def parameters(fn: Any, uses: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """Bad values for every numeric and every choice parameter of ``fn``."""
    target = fn.__init__ if inspect.isclass(fn) else fn
    out: dict[str, dict[str, Any]] = {}
    for p in inspect.signature(target).parameters.values():
        ann = str(p.annotation).replace(" ", "")
        if p.name in uses or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
            continue
        if ann in ("int", "float", "int|None", "float|None"):
            bad: dict[str, Any] = {"NaN": math.nan, "inf": math.inf, "bool": True, "str": "1"}
            if p.name not in NEGATIVE_OK:
                bad["-1"] = -1
            out[p.name] = bad
        elif p.name in CHOICES:
            out[p.name] = {"unknown": "bogus"}
    return out


def finite(out: Any) -> bool:
    """Every number in a result is finite (arrays, frames, dicts, dataclasses, tuples)."""
    if isinstance(out, (bool, str, type(None), torch.nn.Module)):
        return True
    if isinstance(out, (int, float, np.number)):
        return bool(np.isfinite(out))
    if isinstance(out, torch.Tensor):
        return bool(torch.isfinite(out.detach().float()).all())
    if isinstance(out, np.ndarray):
        return out.dtype.kind not in "fc" or bool(np.isfinite(out).all())
    if isinstance(out, pd.DataFrame):
        return finite(out.select_dtypes("number").to_numpy(dtype=float))
    if isinstance(out, Mapping):
        return all(finite(v) for v in out.values())
    if isinstance(out, (list, tuple)):
        return all(finite(v) for v in out)
    if dataclasses.is_dataclass(out):
        return all(finite(getattr(out, f.name)) for f in dataclasses.fields(out))
    return True


def outcome(call: Callable[[], Any]) -> str:
    """'clear' (ValueError/TypeError with a message), 'finite', 'NaN (warned)' (a documented
    undefined value, with an ExplorerWarning), 'NaN' or 'unclear …'."""
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = call()
    except (ValueError, TypeError) as err:
        return "clear" if str(err).strip() else "unclear: empty message"
    except Exception as err:
        return f"unclear {type(err).__name__}: {str(err)[:120]}"
    if finite(out):
        return "finite"
    warned = any(issubclass(w.category, ExplorerWarning) for w in caught)
    return "NaN (warned)" if warned else "NaN"


def public_functions() -> dict[str, Any]:
    out = {}
    for lens, mod in LENSES.items():
        for name in mod.__all__:
            obj = getattr(mod, name)
            if (inspect.isfunction(obj) or inspect.isclass(obj)) and (
                f"{lens}.{name}" not in RESULT_TYPES
            ):
                out[f"{lens}.{name}"] = obj
    return out


@pytest.fixture(scope="module")
def data() -> dict[str, Any]:
    return _base_data()


BASE = _base_data()  # for the hypothesis test (a fixture would be printed with every example)


def test_every_public_function_has_a_recipe() -> None:
    funcs = set(public_functions())
    assert sorted(funcs - set(RECIPES)) == [], "add a recipe (how to call it) for new functions"
    assert sorted(set(RECIPES) - funcs) == []


def test_recipes_run_on_valid_input(data: dict[str, Any]) -> None:
    """The census is only honest if every unmodified call succeeds with a finite result."""
    results = {name: outcome(lambda call=call: call(data)) for name, (_, call) in RECIPES.items()}
    assert {k: v for k, v in results.items() if v != "finite"} == {}


def cases(name: str, data: dict[str, Any]) -> list[tuple[str, str, Callable[[], Any]]]:
    """(kind, label, call) for one recipe: kind "reject" must raise clearly, "magnitude" must
    give a finite result or a clear error."""
    uses, call = RECIPES[name]
    out: list[tuple[str, str, Callable[[], Any]]] = []
    for field in uses:
        for what, bad in must_reject(field, data[field]).items():
            out.append(("reject", f"{field}={what}", partial(call, {**data, field: bad})))
        if field in MAGNITUDE:
            for scale in (1e170, 1e-170):
                big = {**data, field: _map(data[field], lambda a, s=scale: a * s)}
                out.append(("magnitude", f"{field}×{scale:g}", partial(call, big)))
    for param, values in parameters(public_functions()[name], uses).items():
        for what, value in values.items():
            out.append(("reject", f"{param}={what}", partial(call, data, **{param: value})))
    return out


def census(data: dict[str, Any]) -> dict[tuple[str, str], str]:
    """(kind, case) → outcome for every recipe's bad inputs."""
    return {
        (kind, f"{name}({label})"): outcome(thunk)
        for name in sorted(RECIPES)
        for kind, label, thunk in cases(name, data)
    }


def test_census_every_bad_input_gets_a_clear_error(data: dict[str, Any]) -> None:
    results = census(data)
    ok = {"reject": ("clear",), "magnitude": ("clear", "finite")}
    failures = {case: got for (kind, case), got in results.items() if got not in ok[kind]}
    for kind in ok:
        tried = [case for k, case in results if k == kind]
        good = sum((kind, c) in results and results[kind, c] in ok[kind] for c in tried)
        print(f"\ncensus ({len(RECIPES)} public functions): {kind}: {good}/{len(tried)} handled")
    for case, got in sorted(failures.items()):
        print(f"  {case}: {got}")
    assert failures == {}


def test_every_task_generator_refuses_bad_parameters() -> None:
    """The data boundary too: every keyword of every task in ``explorer.data.TASKS`` with a
    number, flag or choice default, at NaN, inf, -1, a bool and a string (numbers), 2 and
    "yes" (flags) or an unknown name (choices), is a ValueError/TypeError — not data with
    NaN in it, spirals of -1 turns or ``gray="yes"`` read as true. (A keyword that may
    legitimately be negative needs its own case here.)"""
    bad: dict[type, list[Any]] = {
        bool: [2, "yes"], int: [math.nan, math.inf, -1, True, "3"],
        float: [math.nan, math.inf, -1, True, "3"], str: ["bogus"],
    }  # fmt: skip
    accepted, tried = [], 0
    for name in data_tasks.TASKS:
        for param in inspect.signature(getattr(data_tasks, name)).parameters.values():
            for value in bad.get(type(param.default), []):
                tried += 1
                try:
                    getattr(data_tasks, name)(**{param.name: value})
                except (ValueError, TypeError):
                    continue
                accepted.append(f"{name}({param.name}={value!r})")
    print(f"\ncensus (data tasks): {tried - len(accepted)}/{tried} refused")
    assert tried > 500 and accepted == []


def test_interventions_refuse_bad_parameters() -> None:
    """The intervention functions' parameters (issue 19): a fractional seed raised torch's
    RuntimeError, n_steps=0 Captum's AssertionError, a target id beyond the vocabulary an index
    error inside the model's logits, a complex steering vector was added as its real part."""
    import explorer.interventions as iv
    from explorer.models import Transformer, TransformerConfig

    model = Transformer(TransformerConfig(vocab_size=12, n_ctx=8, d_model=16, n_heads=2))
    tokens = torch.randint(0, 12, (3, 6), generator=torch.Generator().manual_seed(0))
    site = "blocks.0.hook_resid_pre"
    bad = {
        "ablate(seed=1.5)": lambda: iv.ablate(model, tokens, site, method="resample",
                                               reference=tokens, seed=1.5),
        "ablate(direction=complex)": lambda: iv.ablate(model, tokens, site,
                                                        direction=torch.ones(16) + 1j),
        "steer(vector=complex)": lambda: iv.steer(model, tokens, site, torch.ones(16) + 1j),
        "steer(scale=True)": lambda: iv.steer(model, tokens, site, torch.ones(16), scale=True),
        "attribute(n_steps=0)": lambda: iv.attribute(model, tokens, target=1, n_steps=0),
        "attribute(target=99)": lambda: iv.attribute(model, tokens, target=99, n_steps=2),
        "attribute(target=1.5)": lambda: iv.attribute(model, tokens, target=1.5, n_steps=2),
    }  # fmt: skip
    unclear = {}
    for label, call in bad.items():
        try:
            call()
            unclear[label] = "accepted"
        except (ValueError, TypeError):
            continue
        except Exception as err:  # the census records what leaked
            unclear[label] = f"{type(err).__name__}: {err}"
    assert unclear == {}
    assert np.isfinite(iv.attribute(model, tokens, target=1, n_steps=2).values).all()


# ------------------------------------------------------------------------------ scale

# Measures that do not depend on the overall scale of the named inputs (scaled together):
# at 1e±170 they must give the same value as at order 1, not merely a finite one.
SCALE_FREE = {
    **{f"alignment.{n}": ("x", "y") for n in (
        "linear_cka", "rbf_cka", "bures_similarity", "cca_similarity", "pwcca", "svcca",
        "linearity_score", "permutation_distance", "procrustes_distance", "rsa", "mutual_knn",
        "cknna", "minibatch_cka", "StreamingCKA")},
    "alignment.cka_matrix": ("reps",),
    **{f"geometry.{n}": ("x",) for n in (
        "effective_rank", "participation_ratio", "stable_rank", "rank_me",
        "von_neumann_entropy", "eigen_decay", "twonn", "mle_id", "local_pca_id")},
    "spectra.spectrum_distance": ("signal",),
    "spectra.residual_spectrum": ("signal",),
    "spectra.residual_history": ("grid_values",),
    "spectra.logit_fourier_power": ("logits",),
    "spectra.repeated_peak_prominence": ("image",),
    "spectra.psnr": ("grid_values",),
}  # fmt: skip


def _values(out: Any) -> np.ndarray:
    if dataclasses.is_dataclass(out):
        return np.asarray(out.power, dtype=float)
    if isinstance(out, np.ndarray):
        return out.astype(float)
    return np.atleast_1d(np.asarray(out, dtype=float))


@pytest.mark.parametrize("name", sorted(SCALE_FREE))
def test_scale_free_measures_are_exact_at_any_magnitude(name: str, data: dict[str, Any]) -> None:
    _, call = RECIPES[name]
    want = _values(call(data))
    for scale in (1e170, 1e-170):
        scaled = {**data, **{f: _map(data[f], lambda a, s=scale: a * s) for f in SCALE_FREE[name]}}
        np.testing.assert_allclose(_values(call(scaled)), want, rtol=1e-6, atol=1e-12)


# ------------------------------------------------------------------------------ hypothesis

ARRAY_INPUTS = {
    name: field
    for name, (uses, _) in RECIPES.items()
    for field in uses[:1]
    if field not in ("labels", "edges", "texts", "spectrum", "reps", "layouts")
}
_DTYPES = st.sampled_from([np.float64, np.float32, np.int64, np.complex128, np.bool_])
_VALUES = st.one_of(
    st.floats(-1e3, 1e3),
    st.sampled_from([0.0, 1.0, -1.0, 1e170, -1e-170, 1e300, math.nan, math.inf, -math.inf]),
)


@st.composite
def arrays_like(draw: st.DrawFn, base: np.ndarray) -> np.ndarray:
    """An array with ``base``'s number of axes: any small shape, dtype and values."""
    shape = tuple(draw(st.integers(1, 7)) for _ in range(base.ndim))
    dtype = draw(_DTYPES)
    values = draw(hnp.arrays(np.float64, shape, elements=_VALUES))
    if draw(st.booleans()):  # constant or duplicated rows are the classic degenerate inputs
        values[1:] = values[:1]
    with np.errstate(invalid="ignore", over="ignore"):
        return values.astype(dtype) if dtype != np.bool_ else values > 0


@settings(
    max_examples=10,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(st.data())
@pytest.mark.parametrize("name", sorted(ARRAY_INPUTS))
def test_any_array_gets_a_clear_error_or_a_finite_result(name: str, draws: st.DataObject) -> None:
    field = ARRAY_INPUTS[name]
    x = draws.draw(arrays_like(np.asarray(BASE[field])), label=field)
    got = outcome(partial(RECIPES[name][1], {**BASE, field: x}))
    invalid = x.dtype.kind in "cb" or not np.isfinite(x).all()
    assert got == "clear" if invalid else got in ("clear", "finite", "NaN (warned)"), (name, got)
