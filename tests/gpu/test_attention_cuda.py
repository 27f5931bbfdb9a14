"""CUDA parity of the attention analysis: torch-on-GPU paths against the CPU (numba/numpy) ones."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from explorer.analysis import attention as A

pytestmark = pytest.mark.cuda


def _attention(shape, seed=0):
    x = np.random.default_rng(seed).random(shape) ** 4 + 1e-6
    return x / x.sum(-1, keepdims=True)


def test_head_statistics_cuda_matches_cpu():
    a = _attention((3, 4, 24, 24))
    toks = list("abcdefgh") * 3
    cpu = A.head_statistics(a, toks, device="cpu", metrics=A.METRICS)
    gpu = A.head_statistics(torch.from_numpy(a).cuda(), toks, device="cuda", metrics=A.METRICS)
    np.testing.assert_allclose(gpu["value"].to_numpy(), cpu["value"].to_numpy(), rtol=1e-9)


def test_rollout_and_flow_from_cuda_tensors_match_cpu():
    a = _attention((4, 3, 16, 16), seed=1)
    t = torch.from_numpy(a).cuda()
    np.testing.assert_allclose(A.attention_rollout(t), A.attention_rollout(a), atol=1e-12)
    np.testing.assert_allclose(
        A.attention_flow(t, queries=[0, 5]), A.attention_flow(a, queries=[0, 5]), atol=1e-12
    )
