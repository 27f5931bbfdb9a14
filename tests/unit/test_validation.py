from __future__ import annotations

import numpy as np
import pytest
import torch

from explorer.validation import check_finite, check_matrix, check_paired, check_positive_int


@pytest.mark.parametrize("make", [np.zeros, torch.zeros])
def test_check_matrix_accepts_numpy_and_torch(make) -> None:  # type: ignore[no-untyped-def]
    x = make((5, 3))
    assert check_matrix(x) is x


def test_check_matrix_messages() -> None:
    with pytest.raises(ValueError, match=r"must be 2-D.*reshape\(-1, 1\)"):
        check_matrix(np.zeros(4))
    with pytest.raises(ValueError, match="flatten or pool"):
        check_matrix(np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match="at least 4"):
        check_matrix(np.zeros((3, 2)), min_rows=4)
    with pytest.raises(TypeError, match="real numbers"):
        check_matrix(np.array([["a"]]))
    x = np.zeros((3, 2))
    x[1, 1] = np.nan
    with pytest.raises(ValueError, match=r"1 non-finite.*\(1, 1\)"):
        check_matrix(x)
    with pytest.raises(ValueError, match="non-finite"):
        check_finite(torch.tensor([0.0, float("inf")]))


def test_check_paired_and_ints() -> None:
    check_paired(np.zeros((3, 1)), np.zeros((3, 5)))
    with pytest.raises(ValueError, match="same number of rows"):
        check_paired(np.zeros((3, 1)), np.zeros((4, 1)))
    assert check_positive_int(np.int64(3), "k") == 3
    for bad in (0, 2.5, True, "3"):
        with pytest.raises(ValueError, match="k must be an integer"):
            check_positive_int(bad, "k")
