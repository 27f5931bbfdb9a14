from __future__ import annotations

import numpy as np
import pytest
import torch

from explorer.device import accumulation_dtype, as_numpy, as_torch, backend_for, resolve_device


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
