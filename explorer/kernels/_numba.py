"""Numba flag presets: the one place kernel compilation options are decided.

Rules learnt by pynndescent and umap:
- ``cache=True`` only on serial leaf kernels; never on ``parallel=True`` kernels (cached parallel
  kernels segfault when the thread count changes).
- no ``fastmath`` where NaN/inf checks or divisions matter (fastmath implies ``nnan``, so
  ``np.isnan`` returns False); :data:`FASTMATH_SAFE` keeps NaN/inf semantics and only allows
  reassociation and contraction for reductions.
- decorators are lazy (no signatures), so nothing compiles at import time.
- an inner loop from a runtime start (``for j in range(start, u)``) is not vectorised by
  LLVM here (a float64 dot product ran at 1.8 instead of 19 GFMA/s); loop over a slice from 0
  instead (``row = x[i, start:]``, ``for j in range(row.shape[0])``).
- numba's thread pool starts when this module is imported (~1 ms), with torch's thread count kept:
  started later by the first parallel kernel or thread query, numba's OpenMP layer would set
  OpenMP's count, which torch reads as its own, back to all cores, silently undoing a user's
  ``torch.set_num_threads(1)`` (training after a CKA or head-statistics call ran up to 10× slower
  on a busy machine).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import numba
import torch
from numba.np.ufunc import parallel as _numba_parallel

F = TypeVar("F", bound=Callable[..., Any])

FASTMATH_SAFE = frozenset({"contract", "reassoc", "arcp"})
LEAF: dict[str, Any] = {"nogil": True, "cache": True}
LEAF_REDUCTION: dict[str, Any] = {**LEAF, "fastmath": set(FASTMATH_SAFE)}
PARALLEL: dict[str, Any] = {"nogil": True, "parallel": True, "cache": False}

__all__ = ["FASTMATH_SAFE", "LEAF", "LEAF_REDUCTION", "PARALLEL", "leaf", "parallel", "threads"]


def _start_thread_pool() -> None:
    torch_threads = torch.get_num_threads()
    _numba_parallel._launch_threads()
    torch.set_num_threads(torch_threads)


_start_thread_pool()


def leaf(fn: F) -> F:
    """Serial, cached kernel with strict IEEE semantics."""
    return numba.njit(**LEAF)(fn)


def parallel(fn: F) -> F:
    """Parallel (``prange``) kernel; never cached."""
    return numba.njit(**PARALLEL)(fn)


@contextmanager
def threads(n: int | None) -> Iterator[int]:
    """Run parallel kernels with ``n`` threads inside the block (``None``: leave as is)."""
    old = numba.get_num_threads()
    most = int(numba.config.NUMBA_NUM_THREADS)  # type: ignore[attr-defined]
    if n is not None:
        if not 1 <= n <= most:
            raise ValueError(f"threads must be between 1 and {most}, got {n}")
        numba.set_num_threads(n)
    try:
        yield numba.get_num_threads()
    finally:
        numba.set_num_threads(old)
