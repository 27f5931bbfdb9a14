"""Device and dtype policy: where work runs and in which precision.

``device="auto"`` means: the device of a CUDA tensor argument if there is one, else CUDA when
available, else CPU. CPU work goes to numba kernels (or numpy/LAPACK where those win), CUDA work
to torch. Sums whose precision matters accumulate in float64.
"""

from __future__ import annotations

import contextvars
import functools
import os
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, Literal, TypeAlias, TypeVar

import numba
import numpy as np
import torch
from threadpoolctl import ThreadpoolController

import explorer.kernels._numba  # noqa: F401  (starts numba's threads before any query here)

DeviceLike: TypeAlias = str | torch.device
ArrayLike: TypeAlias = np.ndarray | torch.Tensor
Backend: TypeAlias = Literal["numba", "torch"]

__all__ = [
    "ArrayLike",
    "DeviceLike",
    "accumulation_dtype",
    "as_numpy",
    "as_torch",
    "backend_for",
    "gemm_nt",
    "give_back",
    "resolve_device",
    "run_on_workers",
    "scratch",
    "torch_backend_on_cpu",
    "torch_threads",
]

T = TypeVar("T")


def resolve_device(device: DeviceLike = "auto", *arrays: Any) -> torch.device:
    """Resolve ``"auto"``/``"cpu"``/``"cuda"``/``"cuda:1"``/``torch.device`` to a torch.device.

    With ``"auto"``, a CUDA tensor among ``arrays`` decides; otherwise CUDA if available.
    Asking for CUDA on a machine without it raises a clear error.
    """
    if isinstance(device, torch.device):
        resolved = device
    elif device == "auto":
        for a in arrays:
            if isinstance(a, torch.Tensor) and a.is_cuda:
                return a.device
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        try:
            resolved = torch.device(device)
        except (RuntimeError, TypeError) as err:
            raise ValueError(
                f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}"
            ) from err
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            f"device={device!r} was requested but CUDA is not available on this machine; "
            "use device='auto' or 'cpu'."
        )
    return resolved


def backend_for(device: DeviceLike = "auto", *arrays: Any) -> Backend:
    """``"torch"`` when work will run on CUDA, ``"numba"`` (CPU kernels) otherwise.

    Inside :func:`torch_backend_on_cpu`, CPU work takes the torch (CUDA) code paths too.
    """
    if resolve_device(device, *arrays).type == "cuda" or _torch_on_cpu.get():
        return "torch"
    return "numba"


_torch_on_cpu: contextvars.ContextVar[bool] = contextvars.ContextVar("torch_on_cpu", default=False)


@contextmanager
def torch_backend_on_cpu() -> Iterator[None]:
    """Run CPU work through the torch code paths written for CUDA (same code, device "cpu").

    For tests on machines without a GPU: the CUDA paths stay covered and are checked against
    the numba ones. Applies to calls made from this thread (context) inside the block.
    """
    token = _torch_on_cpu.set(True)
    try:
        yield
    finally:
        _torch_on_cpu.reset(token)


def as_numpy(x: Any, dtype: Any = None) -> np.ndarray:
    """Any array-like (numpy, torch on any device, list) → numpy array, detached, on CPU."""
    if isinstance(x, torch.Tensor):
        t = x.detach()
        if t.dtype == torch.bfloat16:
            t = t.float()
        x = t.cpu().numpy()
    return np.asarray(x, dtype=dtype)


def as_torch(
    x: Any, device: DeviceLike | None = None, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """Any array-like → torch tensor on ``device`` (default: leave where it is / CPU)."""
    if isinstance(x, torch.Tensor):
        t = x.detach()
    else:
        t = torch.as_tensor(np.asarray(x))
    target = None if device is None else resolve_device(device, t)
    return t.to(device=target, dtype=dtype)


def accumulation_dtype(x: ArrayLike) -> Any:
    """float64 for any float input (float16/32/64): the dtype sums and Gram matrices accumulate in."""
    return torch.float64 if isinstance(x, torch.Tensor) else np.float64


@functools.cache
def _blas_controller() -> ThreadpoolController:
    return ThreadpoolController()


@contextmanager
def _single_threaded_blas() -> Iterator[None]:
    """numpy's/scipy's BLAS on one thread inside the block; torch's count restored after (the
    workers set theirs to 1, which also sets torch's default for threads started later)."""
    before = torch.get_num_threads()
    try:
        with _blas_controller().limit(limits=1, user_api="blas"):
            yield
    finally:
        torch.set_num_threads(before)


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """torch's CPU ops on ``count`` threads inside the block, in the calling thread (OpenMP's
    count is per thread; torch's default for threads started meanwhile follows it), restored
    after."""
    old = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(old)


@functools.cache
def _onednn_linear() -> Any:
    """torch's oneDNN float32 ``X @ Wᵀ`` (the op behind its fused CPU linear layers, with a
    ``binary`` overload that adds a tensor to the output), if this build has it and it agrees
    with numpy on a small product; else None."""
    op = getattr(getattr(torch.ops, "mkldnn", None), "_linear_pointwise", None)
    if op is None or not torch.backends.mkldnn.is_available():
        return None
    try:
        a = torch.arange(12, dtype=torch.float32).reshape(3, 4) / 7.0
        b = torch.arange(8, dtype=torch.float32).reshape(2, 4) / 3.0
        one = torch.ones(3, 2)
        ok = torch.allclose(op(a, b, None, "none", [], ""), a @ b.T, rtol=1e-6, atol=1e-6)
        ok &= torch.allclose(op.binary(a, one, b, None, "add"), a @ b.T + 1, rtol=1e-6, atol=1e-6)
    except (RuntimeError, TypeError, AttributeError):
        return None
    return op if ok else None


def gemm_nt(a: np.ndarray, b: np.ndarray, add: np.ndarray | None = None) -> np.ndarray:
    """a @ bᵀ (+ ``add``) on the CPU for C-contiguous a (m, k), b (n, k) → (m, n), their dtype.

    float32 goes to oneDNN's GEMM through torch where available: it runs AVX-512 kernels
    wherever the CPU has them, while numpy's OpenBLAS can fall back to its AVX2 kernels (it
    does on AMD Zen 5, at about half the rate); ``add`` is then fused into the GEMM's output.
    float64 and anything else: numpy's BLAS.
    """
    op = _onednn_linear() if a.dtype == np.float32 == b.dtype else None
    if op is None:
        return a @ b.T if add is None else add + a @ b.T
    x, w = torch.from_numpy(a), torch.from_numpy(b)
    if add is None:
        return op(x, w, None, "none", [], "").numpy()
    return op.binary(x, torch.from_numpy(add), w, None, "add").numpy()


def run_on_workers(
    work: Callable[[int, T], None], jobs: Iterable[T], *, parallel: bool = True
) -> None:
    """Call ``work(worker, job)`` for every job, on one thread per core (CPU).

    Meant for independent BLAS GEMMs: each worker multiplies one job at a time with BLAS on a
    single thread, and folds the product while it is still in its cache (numba ``nogil``
    kernels); ``worker`` (0 … workers−1) indexes its own buffers. Workers take the next job as
    they finish one. On a shared machine this also avoids multi-threaded BLAS, whose threads
    wait for each other whenever a core is busy elsewhere. With one core, one job or
    ``parallel=False`` (work too small to pay for a thread pool, ~0.3 ms) the jobs run here,
    BLAS threads left as they are.
    """
    todo = list(jobs)
    workers = max(1, min(numba.get_num_threads(), len(todo))) if parallel else 1
    if workers == 1 or getattr(_worker_state, "inside", False):  # (no pool inside a pool job)
        for job in todo:
            work(0, job)
        return
    queue = iter(todo)
    lock = threading.Lock()

    def loop(worker: int) -> None:
        torch.set_num_threads(1)  # this thread's own setting (OpenMP) as well as torch's
        _worker_state.inside = True
        try:
            while True:
                with lock:
                    job = next(queue, _DONE)
                if job is _DONE:
                    return
                work(worker, job)  # type: ignore[arg-type]
        finally:
            _worker_state.inside = False

    with _single_threaded_blas():
        list(_executor(workers).map(loop, range(workers)))


_worker_state = threading.local()
_pool: tuple[int, int, ThreadPoolExecutor] | None = None  # (process id, size, executor)
_pool_lock = threading.Lock()


def _executor(workers: int) -> ThreadPoolExecutor:
    """One long-lived pool per process (threads cost ~0.1 ms each to start; a forked child
    gets its own pool)."""
    global _pool
    with _pool_lock:
        if _pool is None or _pool[0] != os.getpid() or _pool[1] < workers:
            _pool = (os.getpid(), workers, ThreadPoolExecutor(workers, "explorer-worker"))
        return _pool[2]


_DONE = object()


_SPARE_BYTES = 1 << 28  # scratch buffers handed back, kept for the next call: ≤ 256 MiB
_spare: list[np.ndarray] = []  # flat uint8 buffers, oldest first
_lent: weakref.WeakValueDictionary[int, np.ndarray] = weakref.WeakValueDictionary()
_spare_lock = threading.Lock()


def scratch(shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """An uninitialised C-contiguous CPU array (64-byte aligned) for a per-call workspace,
    in the buffer of an earlier one handed back with :func:`give_back` when one of about the
    right size is kept. A fresh large array costs page faults on first touch: up to a third of
    a CKA's time on a virtual machine.
    """
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape)) * dtype.itemsize
    with _spare_lock:
        fits = [i for i, b in enumerate(_spare) if nbytes + 64 <= b.nbytes <= 2 * nbytes + 128]
        flat = _spare.pop(fits[-1]) if fits else np.empty(nbytes + 64, dtype=np.uint8)
        _lent[id(flat)] = flat
    start = -flat.__array_interface__["data"][0] % 64
    return flat[start : start + nbytes].view(dtype).reshape(shape)


def give_back(*arrays: np.ndarray) -> None:
    """Hand scratch arrays (or views of them) back for reuse: the caller must not read them
    again. The most recent buffers are kept, up to 256 MiB; other arrays are ignored (a
    scratch array never handed back is simply freed with its last view)."""
    with _spare_lock:
        for a in arrays:
            flat = a.base if isinstance(a, np.ndarray) else None
            if flat is not None and _lent.get(id(flat)) is flat:
                del _lent[id(flat)]
                _spare.append(flat)
        while sum(b.nbytes for b in _spare) > _SPARE_BYTES:
            _spare.pop(0)
