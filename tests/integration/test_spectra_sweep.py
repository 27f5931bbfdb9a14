"""The batched FreSh σ sweep equals independent runs, and training fits the target."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.analysis import spectra as S
from explorer.data.signals import signal_1d


@pytest.fixture(scope="module")
def task():  # type: ignore[no-untyped-def]
    return signal_1d("sines", 64, frequencies=(1, 6, 20))


def test_batched_sweep_equals_one_model_at_a_time(task) -> None:  # type: ignore[no-untyped-def]
    sig = [1.0, 4.0, 16.0]
    batched = S.fourier_feature_sweep(task, sig, steps=5, width=32, n_fourier=16)
    looped = S.fourier_feature_sweep(task, sig, steps=5, width=32, n_fourier=16, batched=False)
    np.testing.assert_allclose(batched.initial, looped.initial, atol=1e-5)
    np.testing.assert_allclose(batched.initial_distance, looped.initial_distance, atol=1e-5)
    # float32 sums in a different order (bmm vs mm): equal to rounding after a few Adam steps
    np.testing.assert_allclose(batched.prediction, looped.prediction, atol=1e-3)
    df = batched.frame()
    assert list(df.columns) == ["sigma", "metric", "value"] and len(df) == 9


def test_sweep_trains_and_higher_sigma_starts_with_more_high_frequency(task) -> None:  # type: ignore[no-untyped-def]
    res = S.fourier_feature_sweep(task, [1.0, 32.0], steps=150, width=32, n_fourier=16)
    assert np.all(res.train_psnr > S.psnr(res.initial[:, ::2], task.y_train.numpy()[None]))
    share = S.high_frequency_share(S.power_spectrum(res.initial[..., 0], detrend=True), 0.25)
    assert share[1] > share[0]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"sigmas": []}, "sigmas"),
        ({"sigmas": [1.0, -2.0]}, "sigmas"),
        ({"sigmas": [1.0], "steps": 0}, "steps"),
        ({"sigmas": [1.0], "lr": 0.0}, "lr"),
    ],
)
def test_sweep_bad_inputs(task, kwargs, match) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=match):
        S.fourier_feature_sweep(task, **kwargs)


def test_sweep_needs_a_field_task() -> None:
    from types import SimpleNamespace

    with pytest.raises(ValueError, match="field task"):
        S.fourier_feature_sweep(SimpleNamespace(meta={}), [1.0])
