from __future__ import annotations

import threading

import numba
import numpy as np
import pytest
import torch

from explorer.analysis.alignment import linear_cka
from explorer.device import (
    accumulation_dtype,
    as_numpy,
    as_torch,
    backend_for,
    gemm_nt,
    give_back,
    resolve_device,
    run_on_workers,
    scratch,
)


def test_auto_resolves_to_cpu_without_cuda() -> None:
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="machine has CUDA")
def test_asking_for_missing_cuda_is_a_clear_error() -> None:
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        resolve_device("cuda")
    assert backend_for("auto") == "numba"


def test_bad_device_name() -> None:
    with pytest.raises(ValueError, match="device must be"):
        resolve_device("gpu0")


def test_conversions_round_trip() -> None:
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    t = as_torch(x)
    assert t.dtype == torch.float32 and t.shape == (2, 3)
    np.testing.assert_array_equal(as_numpy(t), x)
    assert as_numpy(torch.ones(2, requires_grad=True)).tolist() == [1.0, 1.0]
    assert as_numpy(torch.ones(2, dtype=torch.bfloat16)).dtype == np.float32
    assert as_torch([1, 2], dtype=torch.float64).dtype == torch.float64
    assert accumulation_dtype(t) == torch.float64
    assert accumulation_dtype(x) == np.float64


def test_gemm_nt_matches_float64_and_keeps_dtype() -> None:
    rng = np.random.default_rng(0)
    for dtype, tol in ((np.float32, 1e-5), (np.float64, 1e-12)):
        a, b = (
            rng.standard_normal((70, 300)).astype(dtype),
            rng.standard_normal((50, 300)).astype(dtype),
        )
        got = gemm_nt(a, b)
        assert got.dtype == dtype and got.shape == (70, 50)
        exact = a.astype(np.float64) @ b.astype(np.float64).T
        np.testing.assert_allclose(got, exact, rtol=tol, atol=tol * np.abs(exact).max())
        plus = gemm_nt(a, b, add=got)  # the output added to a second product
        assert plus.dtype == dtype
        np.testing.assert_allclose(plus, 2 * exact, rtol=tol, atol=tol * np.abs(exact).max())


def test_run_on_workers_runs_every_job_once_and_restores_threads() -> None:
    torch_threads = torch.get_num_threads()
    seen: list[tuple[int, int, int]] = []
    lock = threading.Lock()

    def work(worker: int, job: int) -> None:
        with lock:
            seen.append((worker, job, torch.get_num_threads()))

    run_on_workers(work, range(9))
    assert sorted(j for _, j, _ in seen) == list(range(9))
    if numba.get_num_threads() > 1:  # a pool: one thread per worker for torch and BLAS
        assert {t for _, _, t in seen} == {1}
    assert torch.get_num_threads() == torch_threads
    seen.clear()
    run_on_workers(lambda w, j: seen.append((w, j, 0)), range(3), parallel=False)
    assert seen == [(0, 0, 0), (0, 1, 0), (0, 2, 0)]
    with pytest.raises(ZeroDivisionError):  # a worker's error reaches the caller
        run_on_workers(lambda w, j: 1 / 0, range(4))
    inner: list[int] = []  # a pool job that runs jobs itself runs them inline (no deadlock)
    run_on_workers(lambda w, j: run_on_workers(lambda v, i: inner.append(i), range(3)), range(4))
    assert sorted(inner) == [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2]


def test_scratch_buffers_are_reused_only_once_handed_back() -> None:
    a = scratch((300, 7), np.float32)
    assert a.flags.c_contiguous and a.__array_interface__["data"][0] % 64 == 0
    b = scratch((300, 7), np.float32)  # a is still lent: a different buffer
    assert not np.shares_memory(a, b)
    give_back(a[1:], np.zeros(3))  # a view hands back its buffer; foreign arrays are ignored
    c = scratch((7, 300), np.float32)
    assert np.shares_memory(a, c)
    give_back(c, c)  # a second hand-back of the same buffer is ignored
    assert np.shares_memory(scratch((2100,), np.float32), a)
    assert not np.shares_memory(scratch((2100,), np.float32), a)


def test_cka_is_exact_when_reused_buffers_hold_garbage() -> None:
    """The transposed chunks are zero-padded past n although scratch buffers are not zeroed."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2049, 24)).astype(np.float32) + 2.0  # two chunks, 31 padded rows
    y = np.tanh(x[:, :16]) + 0.1 * rng.standard_normal((2049, 16)).astype(np.float32)
    first = linear_cka(x, y, debiased=True, route="feature")
    garbage = [scratch(shape, np.float32) for shape in [(2, 24, 1040), (2, 16, 1040)] * 3]
    for buf in garbage:
        buf[...] = np.nan
    give_back(*garbage)
    again = linear_cka(x, y, debiased=True, route="feature")
    reference = linear_cka(x.astype(np.float64), y.astype(np.float64), debiased=True)
    assert again == first
    assert abs(again - reference) < 1e-7
