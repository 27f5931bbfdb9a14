"""Device and dtype policy: where work runs and in which precision.

``device="auto"`` means: the device of a CUDA tensor argument if there is one, else CUDA when
available, else CPU. CPU work goes to numba kernels (or numpy/LAPACK where those win), CUDA work
to torch. Sums whose precision matters accumulate in float64.
"""

from __future__ import annotations

from typing import Any, Literal, TypeAlias

import numpy as np
import torch

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
    "resolve_device",
]


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
    """``"torch"`` when work will run on CUDA, ``"numba"`` (CPU kernels) otherwise."""
    return "torch" if resolve_device(device, *arrays).type == "cuda" else "numba"


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
