"""eval_mode: every module in eval mode inside the block, each module's own mode back after."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from explorer.modes import eval_mode


def _modes(model: nn.Module) -> list[bool]:
    return [m.training for m in model.modules()]


def test_eval_mode_restores_each_modules_own_mode_also_after_an_error():
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Dropout(0.5), nn.Linear(4, 2))
    model.train()
    model[1].eval()  # a user froze the batch norm inside a training model
    before = _modes(model)
    with eval_mode(model) as m:
        assert m is model and not any(_modes(model))
        x = torch.randn(8, 3)
        torch.testing.assert_close(model(x), model(x))  # no dropout: deterministic
    assert _modes(model) == before  # model.train(was) would have unfrozen the batch norm
    with pytest.raises(RuntimeError, match="boom"), eval_mode(model):
        raise RuntimeError("boom")
    assert _modes(model) == before


def test_eval_mode_runs_a_modules_own_train_override_both_ways():
    calls: list[bool] = []

    class Frozen(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = nn.Dropout(0.5)

        def train(self, mode: bool = True) -> Frozen:
            calls.append(mode)
            return super().train(mode)

    model = nn.Sequential(nn.Linear(2, 2), Frozen())
    before = _modes(model)
    with eval_mode(model):
        assert not any(_modes(model))
    assert calls == [False, True] and _modes(model) == before


def test_eval_mode_puts_every_mode_back_when_a_train_override_raises():
    class Refuses(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = nn.Dropout(0.5)

        def train(self, mode: bool = True) -> Refuses:
            super().train(mode)  # children switched, then it fails
            if not mode:
                raise RuntimeError("cannot leave training")
            return self

    model = nn.Sequential(nn.Linear(2, 2), Refuses())
    before = _modes(model)
    with pytest.raises(RuntimeError, match="cannot leave"), eval_mode(model):
        pass
    assert _modes(model) == before
