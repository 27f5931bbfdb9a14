"""Position/context decomposition of transformer hidden states (Song & Zhong 2023,
"Uncovering hidden geometry in Transformers via disentangling position and context").

For hidden states h[c, t] (C sequences × T positions × d), the two-way ANOVA split
h[c, t] = μ + pos[t] + ctx[c] + resid[c, t] with μ = mean over c, t; pos[t] = mean_c h[c, t] − μ;
ctx[c] = mean_t h[c, t] − μ. The parts are orthogonal in the Frobenius sense (their variances
add up), and the paper reports pos low-dimensional and smooth (a spiral), ctx clustered, and
pos ⟂ ctx ("mutually nearly orthogonal").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from explorer.analysis.geometry.spectrum import effective_rank_of
from explorer.device import as_numpy
from explorer.validation import check_array, check_finite, rescale

__all__ = ["PositionContext", "position_context"]


@dataclass(frozen=True)
class PositionContext:
    """Result of :func:`position_context`; arrays are float64.

    mean (d,), position (T, d), context (C, d), residual (C, T, d); ``variance_share`` maps
    "position", "context", "residual" to their fraction of the total variance Σ‖h − μ‖².
    """

    mean: np.ndarray
    position: np.ndarray
    context: np.ndarray
    residual: np.ndarray
    variance_share: dict[str, float]

    def summary(self, n_top: int = 2) -> dict[str, float]:
        """Scalar summary of the paper's three claims.

        - ``position_top{n_top}_share``: fraction of the positional variance in its top n_top
          principal components (low-dimensional → near 1);
        - ``position_effective_rank`` (σ variant, centred);
        - ``position_smoothness``: mean cosine between consecutive pos[t], pos[t+1] (→ 1 smooth);
        - ``incoherence_max`` / ``incoherence_mean``: max / mean |cos(pos[t], ctx[c])|, with
          ``incoherence_random`` the mean |cos| of two random Gaussian vectors in d dimensions,
          √(2/(π d)), as the baseline.
        """
        pos, ctx = self.position, self.context
        d = pos.shape[1]
        sig = np.linalg.svd(pos - pos.mean(0), compute_uv=False)
        lam = sig**2
        top = float(lam[:n_top].sum() / lam.sum()) if lam.sum() > 0 else float("nan")
        unit_p = pos / np.maximum(np.linalg.norm(pos, axis=1, keepdims=True), 1e-300)
        unit_c = ctx / np.maximum(np.linalg.norm(ctx, axis=1, keepdims=True), 1e-300)
        cos = np.abs(unit_p @ unit_c.T)
        smooth = float(np.mean(np.sum(unit_p[1:] * unit_p[:-1], axis=1))) if len(pos) > 1 else 1.0
        return {
            f"position_top{n_top}_share": top,
            "position_effective_rank": effective_rank_of(sig) if sig.sum() > 0 else float("nan"),
            "position_smoothness": smooth,
            "incoherence_max": float(cos.max()),
            "incoherence_mean": float(cos.mean()),
            "incoherence_random": float(np.sqrt(2.0 / (np.pi * d))),
            **{f"variance_{k}": v for k, v in self.variance_share.items()},
        }


def position_context(h: Any) -> PositionContext:
    """Decompose hidden states h (C, T, d) — C sequences of equal length T — into
    mean + position + context + residual (see the module docstring). Computed at an exact
    power-of-two scale and scaled back, so values of any magnitude are safe."""
    arr = as_numpy(check_array(h, "h", finite=False), dtype=np.float64)
    if arr.ndim != 3:
        raise ValueError(
            f"h must have shape (n_sequences, seq_len, d), got {arr.shape}; stack hidden states "
            "of equal-length sequences (e.g. a captured blocks.i.hook_resid_post)"
        )
    n_seq, seq_len, _ = arr.shape
    if n_seq < 2 or seq_len < 2:
        raise ValueError(
            f"need at least 2 sequences and 2 positions to separate position from context, "
            f"got {n_seq} × {seq_len}"
        )
    check_finite(arr, "h")
    arr, e = rescale(arr)
    mu = arr.mean(axis=(0, 1))
    pos = arr.mean(axis=0) - mu
    ctx = arr.mean(axis=1) - mu
    resid = arr - mu - pos[None] - ctx[:, None]
    total = float(((arr - mu) ** 2).sum())
    if total == 0:
        raise ValueError("h is constant: all hidden states are equal, nothing to decompose")
    share = {
        "position": float(n_seq * (pos**2).sum() / total),
        "context": float(seq_len * (ctx**2).sum() / total),
        "residual": float((resid**2).sum() / total),
    }
    mu, pos, ctx, resid = (np.ldexp(a, e) for a in (mu, pos, ctx, resid))
    return PositionContext(mu, pos, ctx, resid, share)
