"""2-D frequency response of token mixers on a grid, and the equal-entropy row shuffle."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.analysis.spectra import grid_mixing_response, permute_rows


def _blur(h: int, w: int) -> np.ndarray:
    """Circular 3×3 box average over an h×w grid, as a (T, T) mixer."""
    t = h * w
    a = np.zeros((t, t))
    for p in range(t):
        r, c = divmod(p, w)
        for dr in (-1, 0, 1):
            for dc in (-1, 0, 1):
                a[p, ((r + dr) % h) * w + (c + dc) % w] += 1 / 9
    return a


def test_identity_passes_everything_and_uniform_only_dc() -> None:
    ident = grid_mixing_response(np.eye(16), (4, 4))
    np.testing.assert_allclose(ident.power, 1.0)
    uniform = grid_mixing_response(np.full((16, 16), 1 / 16), (4, 4)).power
    assert uniform[0] == pytest.approx(1.0) and np.allclose(uniform[1:], 0.0, atol=1e-12)
    assert ident.kind == "gain" and ident.freqs.tolist() == [0.0, 0.25, 0.5]


def test_a_box_blur_is_low_pass_with_its_analytic_gain() -> None:
    spec = grid_mixing_response(_blur(8, 8), (8, 8))
    assert spec.power[0] == pytest.approx(1.0)
    assert np.all(np.diff(spec.power[:4]) < 0)  # falls with frequency up to Nyquist's neighbour
    # along one axis, frequency 1/8: gain = (1 + 2cos(2π/8))/3 in that direction, 1 in the other
    axis = (1 + 2 * np.cos(2 * np.pi / 8)) / 3
    assert spec.power[1] <= 1.0 and spec.power[1] == pytest.approx(axis, abs=0.1)


def test_permute_rows_keeps_each_rows_weights() -> None:
    rng = np.random.default_rng(0)
    a = rng.random((2, 5, 6, 6))
    a /= a.sum(-1, keepdims=True)
    b = permute_rows(a, seed=1)
    np.testing.assert_allclose(np.sort(a, -1), np.sort(b, -1))
    assert not np.allclose(a, b)
    np.testing.assert_array_equal(b, permute_rows(a, seed=1))


def test_bad_mixers() -> None:
    with pytest.raises(ValueError, match="CLS"):
        grid_mixing_response(np.eye(17), (4, 4))
    with pytest.raises(ValueError, match="non-finite"):
        grid_mixing_response(np.full((4, 4), np.nan), (2, 2))
    with pytest.raises(ValueError, match="grid"):
        grid_mixing_response(np.eye(4), (1, 4))
