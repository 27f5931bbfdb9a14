from __future__ import annotations

import os
import subprocess
import sys

import numba
import numpy as np
import pytest

from explorer.kernels import _numba


def test_presets_follow_the_rules() -> None:
    assert _numba.LEAF["cache"] is True and "fastmath" not in _numba.LEAF
    assert _numba.PARALLEL["parallel"] is True and _numba.PARALLEL["cache"] is False
    assert "nnan" not in _numba.FASTMATH_SAFE and "ninf" not in _numba.FASTMATH_SAFE


def _nan_count(x: np.ndarray) -> int:
    n = 0
    for v in x:
        if np.isnan(v):
            n += 1
    return n


@pytest.mark.kernels
def test_leaf_kernels_keep_nan_checks() -> None:
    # the preset's flags, minus the on-disk cache (test modules are not importable by name)
    kernel = numba.njit(**{**_numba.LEAF_REDUCTION, "cache": False})(_nan_count)
    assert kernel(np.array([1.0, np.nan, np.nan])) == 2


def test_threads_context_manager_restores() -> None:
    before = numba.get_num_threads()
    with _numba.threads(1) as n:
        assert n == 1 == numba.get_num_threads()
    assert numba.get_num_threads() == before
    with pytest.raises(ValueError, match="threads must be between"):
        with _numba.threads(10_000):
            pass


def test_importing_explorer_compiles_nothing() -> None:
    code = (
        "import importlib, pkgutil, explorer\n"
        "from numba.core.registry import cpu_target\n"
        "for m in pkgutil.walk_packages(explorer.__path__, 'explorer.'):\n"
        "    importlib.import_module(m.name)\n"
        "from numba.core.dispatcher import Dispatcher\n"
        "import gc\n"
        "print(sum(len(d.overloads) for d in gc.get_objects() if isinstance(d, Dispatcher)))"
    )
    env = {**os.environ, "NUMBA_DISABLE_JIT": "0"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "0"


@pytest.mark.skipif(
    (os.cpu_count() or 1) < 2, reason="one core: torch's default count is already 1"
)
def test_parallel_kernels_keep_torchs_thread_count() -> None:
    # numba's OpenMP layer, started by the first parallel kernel or thread query after torch has
    # run, used to set torch's count back to all cores (notebooks then trained 10x slower)
    code = (
        "import numpy as np, torch\n"
        "torch.set_num_threads(1)\n"
        "(torch.ones(300, 300) @ torch.ones(300, 300)).sum()  # torch's OpenMP pool now runs\n"
        "from explorer.analysis import attention\n"
        "from explorer.analysis.alignment import cka_matrix\n"
        "from explorer.analysis.geometry import knn\n"
        "rng = np.random.default_rng(0)\n"
        "attention.head_statistics(rng.dirichlet(np.ones(8), size=(2, 4, 8)).astype(np.float32))\n"
        "cka_matrix([rng.random((300, 16), dtype=np.float32) for _ in range(3)])\n"
        "knn(rng.random((300, 8), dtype=np.float32), k=3)\n"
        "print(torch.get_num_threads())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "1"
