"""Your own data as a Task, and the check that a model fits it before any training step."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from explorer.data import user_task
from explorer.train import Trainer


def _xy(n: int = 50, d: int = 3):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, d)).astype(np.float32)
    return x, (x[:, 0] > 0).astype(np.int64)


def test_arrays_tensors_frames_and_csv_give_the_same_task(tmp_path):
    x, y = _xy()
    a = user_task((x, y))
    b = user_task((torch.from_numpy(x), torch.from_numpy(y)))
    df = pd.DataFrame(x, columns=["f0", "f1", "f2"]).assign(label=y)
    c = user_task(df, target="label")
    df.to_csv(tmp_path / "d.csv", index=False)
    d = user_task(tmp_path / "d.csv", target="label")
    for t in (b, c, d):
        assert torch.equal(t.x_train, a.x_train) and torch.equal(t.y_test, a.y_test)
    assert a.kind == "classification" and a.meta["n_classes"] == 2 and a.meta["in_dim"] == 3
    assert c.meta["features"] == ["f0", "f1", "f2"] and d.name == "d"
    assert len(a.x_test) == 10 and len(a.x_train) == 40  # test_fraction 0.2


def test_kinds_classes_and_regression():
    x, y = _xy()
    names = np.where(y == 1, "pos", "neg")
    t = user_task((x, names))
    assert t.meta["classes"] == ["neg", "pos"] and set(t.y_train.tolist()) <= {0, 1}
    r = user_task((x, x[:, 0] * 2.0))
    assert r.kind == "regression" and r.y_train.shape == (40, 1) and r.meta["out_dim"] == 1
    forced = user_task((x, y.astype(np.float64)), kind="classification")
    assert forced.kind == "classification" and forced.y_train.dtype == torch.int64


@pytest.mark.parametrize(
    ("data", "kw", "message"),
    [
        ((np.zeros((5, 2)), np.zeros(4, int)), {}, "x has 5 rows but y has 4"),
        ((np.full((5, 2), np.nan), np.zeros(5, int)), {}, "NaN or inf in 5 row"),
        ((np.zeros((5, 2)), -np.ones(5, int)), {}, "class ids must be >= 0"),
        ((np.zeros((5, 2)), np.full(5, 0.5)), {"kind": "classification"}, "whole numbers"),
        (pd.DataFrame({"a": ["x"] * 4, "y": [0, 1, 0, 1]}), {"target": "y"}, "not numeric"),
        (pd.DataFrame({"a": [1.0] * 4, "y": [0, 1, 0, 1]}), {}, "name the target column"),
        (pd.DataFrame({"a": [1.0] * 4}), {"target": "y"}, r"column\(s\) \['y'\] not in the data"),
        ("nowhere.csv", {}, "no data file"),
        (3, {}, "data must be"),
    ],
)
def test_bad_data_is_refused_with_what_is_wrong(data, kw, message):
    with pytest.raises((ValueError, TypeError, FileNotFoundError), match=message):
        user_task(data, **kw)


def test_a_model_that_does_not_fit_your_data_is_named_before_training():
    # (one check, the Trainer's: explorer.validation.check_model_outputs)
    x, _ = _xy()
    t = user_task((x, np.arange(50) % 4))
    Trainer(torch.nn.Linear(3, 4), t)
    with pytest.raises(ValueError, match=r"labels go up to 3 \(4 classes\) but the model gives 3"):
        Trainer(torch.nn.Linear(3, 3), t)
    with pytest.raises(ValueError, match=r"cannot take the task's inputs of shape \(n, 3\)"):
        Trainer(torch.nn.Linear(5, 4), t)
    r = user_task((x, np.stack([x[:, 0], x[:, 1]], 1).astype(np.float64)))
    Trainer(torch.nn.Linear(3, 2), r)
    with pytest.raises(
        ValueError, match=r"targets have shape \(n, 2\) but the model outputs \(n, 1\)"
    ):
        Trainer(torch.nn.Linear(3, 1), r)
