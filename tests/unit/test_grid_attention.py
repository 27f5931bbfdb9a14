"""GridAttention: relative-position attention on an image grid; built from a kernel it is the
circularly padded convolution."""

from __future__ import annotations

import pytest
import torch

from explorer.models import GridAttention, capture, circular_conv
from explorer.models.grid_attention import grid_offsets


def test_offsets_wrap_and_are_antisymmetric() -> None:
    off = grid_offsets(4, 5)
    assert off.shape == (20, 20, 2)
    assert torch.equal(off[0, 1], torch.tensor([0, 1])) and torch.equal(
        off[0, 4], torch.tensor([0, -1])
    )
    assert torch.equal(off[0, 15], torch.tensor([-1, 0]))  # row 3 wraps to −1
    assert (off.diagonal(dim1=0, dim2=1) == 0).all()


def test_construction_equals_the_convolution_as_beta_grows() -> None:
    g = torch.Generator().manual_seed(0)
    kernel, bias = torch.randn(3, 2, 3, 3, generator=g), torch.randn(3, generator=g)
    x = torch.randn(5, 2, 6, 7, generator=g)
    target = circular_conv(x, kernel, bias)
    errors = []
    for beta in (0.0, 4.0, 30.0):
        with torch.no_grad():
            out = GridAttention.from_conv(kernel, (6, 7), beta, bias)(x)
        errors.append(float(((out - target) ** 2).sum() / (target**2).sum()))
    assert errors[0] > 0.3 and errors[1] < 0.05 and errors[2] < 1e-10


def test_each_constructed_head_looks_at_its_own_offset() -> None:
    layer = GridAttention.from_conv(torch.randn(1, 1, 3, 3), (5, 5), beta=20.0)
    pattern = capture(layer, torch.randn(1, 1, 5, 5), ["hook_pattern"])["hook_pattern"]
    assert torch.allclose(pattern.sum(-1), torch.ones(9, 25))
    query = 2 * 5 + 2  # the centre pixel
    looks = [divmod(int(k), 5) for k in pattern[:, query].argmax(-1)]
    assert looks == [(r, c) for r in (1, 2, 3) for c in (1, 2, 3)]


def test_a_learned_layer_fits_a_convolution() -> None:
    g = torch.Generator().manual_seed(1)
    kernel = torch.randn(2, 2, 3, 3, generator=g) / 4
    x = torch.randn(32, 2, 6, 6, generator=g)
    y = circular_conv(x, kernel)
    layer = GridAttention(9, (6, 6), 2, 2, seed=0)
    opt = torch.optim.Adam(layer.parameters(), lr=0.05)
    for _ in range(300):
        loss = ((layer(x) - y) ** 2).mean() / (y**2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 1e-2


def test_bad_input() -> None:
    layer = GridAttention(2, (4, 4), 3, 1)
    with pytest.raises(ValueError, match="expects images"):
        layer(torch.randn(1, 3, 5, 4))
    with pytest.raises(ValueError, match="K odd"):
        GridAttention.from_conv(torch.randn(1, 1, 2, 2), (4, 4), 1.0)
    with pytest.raises(ValueError, match="at least the kernel"):
        GridAttention.from_conv(torch.randn(1, 1, 5, 5), (4, 4), 1.0)
    with pytest.raises(ValueError, match="beta"):
        GridAttention.from_conv(torch.randn(1, 1, 3, 3), (4, 4), -1.0)
