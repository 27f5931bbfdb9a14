"""Fourier analysis over Z_p: key frequencies of embeddings and logits."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from explorer.analysis import spectra as S

P = 23


def fourier_embedding(freqs: list[int], d: int = 8, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = np.arange(P)[:, None]
    basis = np.hstack(
        [np.hstack([np.cos(2 * np.pi * k * a / P), np.sin(2 * np.pi * k * a / P)]) for k in freqs]
    )
    return basis @ rng.standard_normal((basis.shape[1], d))  # (p, d)


def test_embedding_key_frequencies_are_found() -> None:
    spec = S.zp_fourier_power(fourier_embedding([3, 7]))
    assert spec.power.shape == (P // 2 + 1,)
    assert sorted(S.key_frequencies(spec, top=2)) == [3, 7]
    assert sorted(S.key_frequencies(spec, coverage=0.999)) == [3, 7]
    assert S.fourier_concentration(spec, top=2) == pytest.approx(1.0, abs=1e-12)
    noise = S.zp_fourier_power(np.random.default_rng(0).standard_normal((P, 64)))
    assert S.fourier_concentration(noise, top=2) < 0.4


def test_zp_power_parseval_and_axis() -> None:
    x = np.random.default_rng(1).standard_normal((5, P))
    spec = S.zp_fourier_power(torch.as_tensor(x), axis=1)
    assert spec.power.sum() == pytest.approx((x**2).sum() / P, rel=1e-12)
    np.testing.assert_allclose(spec.power, S.zp_fourier_power(x.T).power, rtol=1e-12)


def test_logits_of_a_fourier_circuit_live_on_sum_frequencies() -> None:
    a, b, c = np.meshgrid(np.arange(P), np.arange(P), np.arange(P), indexing="ij")
    logits = sum(np.cos(2 * np.pi * k * (a + b - c) / P) for k in (4, 9))  # (p, p, p)
    spec = S.logit_fourier_power(logits.reshape(P * P, P))
    assert spec.power.sum() == pytest.approx(1.0, abs=1e-12)
    assert sorted(S.key_frequencies(spec, top=2)) == [4, 9]
    rand = S.logit_fourier_power(np.random.default_rng(0).standard_normal((P, P, P)))
    assert rand.power.sum() < 0.2


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: S.logit_fourier_power(np.ones((10, 3))), "square number"),
        (lambda: S.logit_fourier_power(np.ones((4, 5, 3))), "must be"),
        (lambda: S.logit_fourier_power(np.ones((4, 4, 3))), "constant"),
        (lambda: S.key_frequencies(S.zp_fourier_power(np.ones((P, 2))), coverage=0), "coverage"),
        (lambda: S.fourier_concentration(S.zp_fourier_power(np.ones((P, 2))), top=0), "top"),
        (lambda: S.key_frequencies(S.Spectrum(np.arange(3.0), np.ones((2, 3)))), "one spectrum"),
    ],
)
def test_modular_bad_inputs(call, match: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=match):
        call()
