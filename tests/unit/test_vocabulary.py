"""One vocabulary (issue 19): one import path per public name, one registry type, one pooling
convention, seeds, and the deprecated spellings that still work for one release."""

from __future__ import annotations

import importlib
import inspect

import numpy as np
import pytest
import torch

from explorer.analysis import POOLS, Metric, pool_features
from explorer.analysis import alignment as al
from explorer.analysis import attention as attn
from explorer.analysis import geometry as geo

PUBLIC = (
    "explorer",
    "explorer.analysis",
    "explorer.analysis.alignment",
    "explorer.analysis.attention",
    "explorer.analysis.geometry",
    "explorer.analysis.spectra",
    "explorer.data",
    "explorer.device",
    "explorer.errors",
    "explorer.models",
    "explorer.train",
    "explorer.validation",
)


def test_each_public_object_has_one_import_path() -> None:
    paths: dict[int, list[str]] = {}
    for name in PUBLIC:
        mod = importlib.import_module(name)
        for attr in mod.__all__:
            obj = getattr(mod, attr)
            if inspect.isfunction(obj) or inspect.isclass(obj):
                paths.setdefault(id(obj), []).append(f"{name}.{attr}")
    twice = [p for p in paths.values() if len(p) > 1]
    assert twice == []


def test_representation_getters_are_public() -> None:
    assert {"model_representations", "text_representations"} <= set(al.__all__)
    assert {"model_points", "token_states"} <= set(geo.__all__)


def test_every_registry_is_a_dict_of_metric() -> None:
    for registry in (al.METRICS, geo.METRICS, attn.METRICS):
        assert isinstance(registry, dict) and registry
        assert all(isinstance(k, str) and isinstance(m, Metric) for k, m in registry.items())
    assert set(attn.DEFAULT_METRICS) < set(attn.METRICS)
    assert all(m.fn is not None for m in (*al.METRICS.values(), *geo.METRICS.values()))
    assert geo.METRICS["NC1"].needs_labels and not geo.METRICS["twonn"].needs_labels


@pytest.mark.parametrize("make", [np.zeros, torch.zeros])
def test_pooling_convention(make) -> None:  # type: ignore[no-untyped-def]
    seq, maps = make((4, 5, 3)), make((4, 3, 2, 6))
    shapes = {p: tuple(pool_features(seq, p).shape) for p in POOLS}
    assert shapes == {
        "mean": (4, 3), "max": (4, 3), "cls": (4, 3), "last": (4, 3),
        "flatten": (4, 15), "tokens": (20, 3),
    }  # fmt: skip
    assert tuple(pool_features(maps, "tokens").shape) == (48, 3)
    assert tuple(pool_features(maps).shape) == (4, 3)
    assert type(pool_features(seq)) is type(seq)  # transforms keep the caller's type


def test_pool_defaults_to_mean_everywhere() -> None:
    funcs = [getattr(al, n) for n in al.__all__ if callable(getattr(al, n))]
    funcs += [geo.geometry_profile, geo.model_points, al.StreamingCKA]
    defaults = {
        f.__name__: inspect.signature(f).parameters["pool"].default
        for f in funcs
        if "pool" in inspect.signature(f).parameters
    }
    assert len(defaults) > 20 and set(defaults.values()) == {"mean"}


def test_tokens_pooling_keeps_rows_paired_and_tokens_as_points() -> None:
    rng = np.random.default_rng(0)
    h = rng.normal(size=(6, 4, 3))
    got = geo.geometry_profile({"h": h}, metrics=["effective_rank"], pool="tokens")
    want = geo.effective_rank(h.reshape(-1, 3))
    assert got.query("metric == 'effective_rank'").value.item() == pytest.approx(want)


def test_moved_and_renamed_names_warn_and_still_work() -> None:
    with pytest.warns(DeprecationWarning, match=r"explorer\.analysis\.Metric"):
        assert al.Metric is Metric
    with pytest.warns(DeprecationWarning, match=r"explorer\.analysis\.pool_features"):
        assert al.pool_features is pool_features
    h = np.arange(24.0).reshape(2, 4, 3)
    with pytest.warns(DeprecationWarning, match="pool_features"):
        np.testing.assert_array_equal(geo.as_points(h), pool_features(h, "tokens"))
    x = np.random.default_rng(1).normal(size=(20, 5))
    with pytest.warns(DeprecationWarning, match=r"PCA.__init__\(random_state=...\).*seed="):
        old = geo.PCA(2, random_state=3).fit_transform(x)
    np.testing.assert_array_equal(old, geo.PCA(2, seed=3).fit_transform(x))
    with pytest.warns(DeprecationWarning, match="seed="):
        geo.project(x, random_state=0)


def test_seed_none_is_fresh_entropy_not_zero() -> None:
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(64, 3)), rng.normal(size=(64, 3))
    ordered = al.minibatch_cka(x, y, batch_size=8, shuffle=False)
    seeded = {al.minibatch_cka(x, y, batch_size=8, seed=0) for _ in range(2)}
    assert len(seeded) == 1 and ordered not in seeded
    with pytest.warns(FutureWarning, match="shuffle=False"):
        fresh = {al.minibatch_cka(x, y, batch_size=8, seed=None) for _ in range(3)}
    assert len(fresh) > 1
    with pytest.raises(TypeError, match="seed"):
        al.minibatch_cka(x, y, seed=1.5)


def test_mixing_matrices_are_numpy_like_rollout() -> None:
    a = np.full((2, 1, 3, 3), 1 / 3)
    assert isinstance(attn.mixing_matrices(a), np.ndarray)
    assert isinstance(attn.attention_rollout(a), np.ndarray)
