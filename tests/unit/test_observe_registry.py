"""One place for layer names and model-at-step; task → model factories for every family."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from explorer.analysis.spectra import residual_history, residual_spectrum
from explorer.data import make_task
from explorer.models.observe import short_name, short_names
from explorer.models.registry import model_for_task, task_families


def test_short_names_agree_everywhere():
    assert [short_name(n) for n in ("blocks.3.hook_resid_post", "layers.1.hook_post",
            "blocks.0.hook_resid_pre", "hook_encoded", "hook_features", "head")] == [
        "L3", "L1", "embed", "input", "features", "head"]  # fmt: skip
    clash = ["blocks.0.hook_resid_post", "blocks.0.attn.hook_z"]
    assert short_names(clash) == clash  # shortening would merge two layers: keep full names


@pytest.mark.parametrize(
    ("task", "families", "out_shape"),
    [
        ("spirals", ("mlp",), (3, 2)),
        ("signal_1d", ("mlp", "neural_field"), (3, 1)),
        ("digits", ("cnn", "vit"), (3, 10)),
        ("shapes", ("cnn", "vit"), (3, 6)),
        ("copy", ("transformer",), (3, 16, 9)),
    ],
)
def test_every_family_builds_for_its_tasks(task, families, out_shape):
    t = make_task(task)
    assert task_families(t) == families
    for fam in families:
        factory = model_for_task(t, fam)
        a, b = factory(0), factory(0)
        assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
        assert tuple(a(t.x_train[:3]).shape) == out_shape


def test_model_for_task_checks_before_building():
    copy, spirals = make_task("copy"), make_task("spirals")
    with pytest.raises(ValueError, match="d_model=32 must be divisible by n_heads=3"):
        model_for_task(copy, d_model=32, n_heads=3)
    with pytest.raises(ValueError, match=r"unknown mlp setting\(s\) \['n_heads'\]"):
        model_for_task(spirals, n_heads=2)
    with pytest.raises(ValueError, match="does not fit the 'spirals' task"):
        model_for_task(spirals, "cnn")


def test_residual_history_rows_sum_to_the_relative_error():
    n = 64
    x = np.arange(n) / n
    target = np.stack([np.sin(2 * np.pi * x), np.cos(6 * np.pi * x)], 1)  # (N, 2 channels)
    preds = np.stack([np.zeros_like(target), 0.5 * target, target])  # (steps, N, C)
    spec = residual_history(preds, target, (n,))
    rel = ((preds - target) ** 2).sum((1, 2)) / (target**2).sum()
    np.testing.assert_allclose(spec.power.sum(1), rel, rtol=1e-12)
    one = residual_spectrum(preds[:, :, 0], target[:, 0])  # single channel agrees
    np.testing.assert_allclose(
        residual_history(preds[:, :, :1], target[:, :1], (n,)).power, one.power
    )
    with pytest.raises(ValueError, match="1-D or 2-D"):
        residual_history(preds, target, (4, 4, 4))


def test_seed_models_trains_other_seeds_of_a_model_or_a_factory():
    from explorer.train import TrainConfig, seed_models

    task = make_task("blobs", n=40)
    model = model_for_task(task, "mlp", depth=1, width=8)
    config = TrainConfig(lr=1e-2)
    built = seed_models(model, task, config, seeds=[1, 2], steps=3)
    assert list(built) == [1, 2]
    w1, w2 = (next(m.parameters()).detach() for m in built.values())
    assert not torch.equal(w1, w2)  # different seeds, different weights
    mine = seed_models(lambda s: torch.nn.Linear(2, 3), task, config, seeds=[0], steps=0)
    assert isinstance(mine[0], torch.nn.Linear)
    for bad, err in (({"seeds": []}, ValueError), ({"seeds": [-1]}, ValueError),
                     ({"seeds": [1.5]}, ValueError), ({"steps": -1}, ValueError),
                     ({"steps": True}, ValueError)):  # fmt: skip
        with pytest.raises(err):
            seed_models(model, task, config, **{"seeds": [1], "steps": 1, **bad})
    with pytest.raises(TypeError, match="factory"):
        seed_models(torch.nn.Linear(2, 3), task, config, seeds=[1], steps=1)
