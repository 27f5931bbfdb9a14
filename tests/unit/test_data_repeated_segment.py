"""repeated_segment: one repeated segment at a random start and length, scored on the repeat."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from explorer.data import make_task


def test_segment_repeats_and_only_the_repeat_is_scored():
    task = make_task("repeated_segment", n=400, seq_len=13, min_length=3, max_length=6,
                     n_symbols=10, seed=3)  # fmt: skip
    x = torch.cat([task.x_train, task.x_test]).numpy()
    y = torch.cat([task.y_train, task.y_test]).numpy()
    assert x.shape == y.shape == (400, 13) and task.meta["chance"] == pytest.approx(0.1)
    lengths, starts = set(), set()
    for row_x, row_y in zip(x, y):
        scored = np.flatnonzero(row_y != -100)
        k = len(scored) + 1
        first = scored[0] - k  # start of the first copy in x
        seg = row_x[first : first + k]
        assert 3 <= k <= 6 and len(set(seg)) == k
        np.testing.assert_array_equal(row_x[first + k : first + 2 * k][: len(row_x) - first - k],
                                      seg[: len(row_x) - first - k])  # fmt: skip
        np.testing.assert_array_equal(row_y[scored], seg[1:])
        filler = np.delete(row_x, np.r_[first : min(first + 2 * k, 13)])
        assert not set(filler) & set(seg)  # no earlier occurrence can mislead
        lengths.add(k)
        starts.add(first)
    assert lengths == {3, 4, 5, 6} and len(starts) > 4  # the distance back varies


def test_bad_lengths():
    with pytest.raises(ValueError, match="too short"):
        make_task("repeated_segment", seq_len=8, max_length=6)
    with pytest.raises(ValueError, match="n_symbols"):
        make_task("repeated_segment", n_symbols=6, max_length=6)
