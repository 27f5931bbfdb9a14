"""Checks at public boundaries: fail early, before any state changes, with a message that says
what was wrong and what to do. ``TypeError`` for the wrong kind of thing (complex, bool, object
or string arrays, a string where a number belongs), ``ValueError`` for a wrong value (shape,
range, NaN/inf, too few samples)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, TypeVar, cast

import numpy as np
import torch

from explorer.device import ArrayLike
from explorer.modes import eval_mode

__all__ = [
    "check_array",
    "check_finite",
    "check_flag",
    "check_labels",
    "check_magnitude",
    "check_matrix",
    "check_model_inputs",
    "check_model_outputs",
    "check_number",
    "check_paired",
    "check_positive_int",
    "check_seed",
    "rescale",
]

A = TypeVar("A", bound=np.ndarray | torch.Tensor)

# |values| whose squares and sums of squares stay normal numbers, per float size in bytes
_SAFE = {8: (1e-100, 1e100), 4: (1e-15, 1e15), 2: (1e-2, 1e2)}


def _shape(x: ArrayLike) -> tuple[int, ...]:
    return tuple(x.shape)


def check_finite(x: ArrayLike, name: str = "input") -> None:
    """Raise ValueError if ``x`` holds NaN or inf, saying how many and where the first is."""
    # Fast path, one pass and no temporaries: a finite sum proves every entry finite (NaN and
    # ±inf propagate); only a non-finite sum (bad entries, or overflow) needs the full scan.
    if isinstance(x, torch.Tensor):
        if not x.is_floating_point() or bool(torch.isfinite(x.sum())):
            return
    elif not np.issubdtype(x.dtype, np.inexact):
        return
    else:
        with np.errstate(over="ignore", invalid="ignore"):
            if np.isfinite(x.sum()):
                return
    bad = ~torch.isfinite(x) if isinstance(x, torch.Tensor) else ~np.isfinite(x)
    n_bad = int(bad.sum())
    if n_bad:
        idx = np.unravel_index(int(bad.reshape(-1).nonzero()[0][0]), _shape(x))
        raise ValueError(
            f"{name} contains {n_bad} non-finite value(s) (NaN or inf), first at index "
            f"{tuple(int(i) for i in idx)}; remove or impute them before calling this."
        )


def _check_real_dtype(x: ArrayLike, name: str) -> None:
    """TypeError unless ``x`` holds real numbers (integers or floats, not bool)."""
    if isinstance(x, torch.Tensor):
        ok = not (x.is_complex() or x.dtype == torch.bool)
        dtype: Any = x.dtype
    else:
        ok = np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)
        dtype = x.dtype
    if ok:
        return
    kind = str(dtype)
    if "complex" in kind:
        hint = "pass x.real, x.imag or abs(x) explicitly (the imaginary part is never dropped)"
    elif "bool" in kind:
        hint = "convert it first, e.g. x.astype(float), if 0/1 values are meant"
    else:
        hint = "pass an array of numbers"
    raise TypeError(f"{name} must hold real numbers (int or float), got dtype {kind}: {hint}")


def check_array(
    x: Any,
    name: str = "x",
    *,
    ndim: int | None = None,
    min_ndim: int = 0,
    finite: bool = True,
) -> ArrayLike:
    """Validate an array of real numbers; return it as numpy (lists converted) or torch, unchanged.

    Rejects complex, bool, object and string dtypes (TypeError), the wrong number of axes and
    NaN/inf (ValueError). ``ndim``: exact number of axes; ``min_ndim``: at least that many.
    """
    if not isinstance(x, (np.ndarray, torch.Tensor)):
        try:
            x = np.asarray(x)
        except (ValueError, TypeError) as err:  # ragged nested lists
            raise ValueError(f"{name} is not a rectangular array of numbers: {err}") from None
    _check_real_dtype(x, name)
    if ndim is not None and x.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} axes, got shape {_shape(x)}")
    if x.ndim < min_ndim:
        raise ValueError(f"{name} must have at least {min_ndim} axes, got shape {_shape(x)}")
    if finite:
        check_finite(x, name)
    return x


def check_matrix(
    x: Any, name: str = "X", *, min_rows: int = 1, min_cols: int = 1, finite: bool = True
) -> ArrayLike:
    """Validate an (n, d) matrix of real numbers (rows are samples); returned unchanged.

    Lists are converted to numpy. 1-D input is rejected with a hint to reshape; dtypes as in
    :func:`check_array`.
    """
    if not isinstance(x, (np.ndarray, torch.Tensor)):
        x = check_array(x, name, finite=False)
    if x.ndim != 2:
        hint = " (use x.reshape(-1, 1) for one feature)" if x.ndim == 1 else ""
        hint = hint or " (flatten or pool extra axes first, e.g. x.reshape(len(x), -1))"
        raise ValueError(f"{name} must be 2-D (n_samples, n_features), got shape {_shape(x)}{hint}")
    _check_real_dtype(x, name)
    n, d = _shape(x)
    if n < min_rows:
        raise ValueError(f"{name} has {n} rows (samples); this needs at least {min_rows}")
    if d < min_cols:
        raise ValueError(f"{name} has {d} columns (features); this needs at least {min_cols}")
    if finite:
        check_finite(x, name)
    return x


def check_paired(x: ArrayLike, y: ArrayLike, names: tuple[str, str] = ("X", "Y")) -> None:
    """Raise ValueError unless ``x`` and ``y`` have the same number of rows (paired samples)."""
    if x.shape[0] != y.shape[0]:
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same number of rows (paired samples), got "
            f"{x.shape[0]} and {y.shape[0]}"
        )


def check_positive_int(value: Any, name: str, *, minimum: int = 1) -> int:
    """Return ``value`` as int if it is an integer ≥ ``minimum``, else raise ValueError."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_number(
    value: Any,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """Return ``value`` as a finite float in the given range, else raise.

    TypeError for a bool, a string or anything that is not a real number; ValueError for NaN,
    ±inf or a value outside [low, high] (``low_open``/``high_open`` exclude the bound).
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        raise TypeError(f"{name} must be a real number, got {value!r} ({type(value).__name__})")
    if isinstance(value, (complex, np.complexfloating)):
        raise TypeError(f"{name} must be a real number, got complex {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    too_low = low is not None and (v <= low if low_open else v < low)
    too_high = high is not None and (v >= high if high_open else v > high)
    if too_low or too_high:
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        lo = "-inf" if low is None else f"{low:g}"
        hi = "inf" if high is None else f"{high:g}"
        raise ValueError(f"{name} must be in {left}{lo}, {hi}{right}, got {value!r}")
    return v


def check_flag(value: Any, name: str) -> bool:
    """Return ``value`` if it is a bool (numpy's too), else raise TypeError: a string such as
    ``"no"`` or a number is never read as true or false."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r} ({type(value).__name__})")
    return bool(value)


def check_seed(seed: Any, name: str = "seed") -> int | None:
    """A seed is an integer ≥ 0 (reproducible) or ``None`` (fresh OS entropy, different each
    call — never a silent 0). Returns it as int or None."""
    if seed is None:
        return None
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"{name} must be an integer >= 0 or None (unseeded), got {seed!r}")
    if seed < 0:
        raise ValueError(f"{name} must be an integer >= 0 or None (unseeded), got {seed!r}")
    return int(seed)


def check_labels(labels: Any, n: int, name: str = "labels") -> np.ndarray:
    """Class labels as a 1-D numpy array of length ``n`` (ints, strings or integral floats).

    Rejects NaN/inf and fractional float labels, bool/complex/object arrays of non-strings,
    and a length that does not match the ``n`` samples.
    """
    if isinstance(labels, torch.Tensor):
        labels = labels.detach().cpu().numpy()
    y = np.asarray(labels)
    if y.ndim != 1:
        y = y.reshape(-1) if y.ndim == 2 and 1 in y.shape else y
    if y.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one class per sample), got shape {y.shape}")
    if len(y) != n:
        raise ValueError(f"{name} has {len(y)} entries but there are {n} samples; they must match")
    if y.dtype.kind in "US":
        return y
    if y.dtype.kind == "O" and all(isinstance(v, str) for v in y):
        return y.astype(str)
    _check_real_dtype(y, name)
    if y.dtype.kind == "f":
        check_finite(y, name)
        if not np.array_equal(y, np.round(y)):
            first = y[y != np.round(y)][0]
            raise ValueError(f"{name} must be class ids, got fractional values (first: {first!r})")
    return y


def _max_abs(x: ArrayLike) -> float:
    if x.shape and 0 in tuple(x.shape):
        return 0.0
    if isinstance(x, torch.Tensor):
        return float(x.detach().abs().max())
    return max(float(x.max()), -float(x.min()))  # two passes, no |x| copy


def _safe_range(x: ArrayLike) -> tuple[float, float]:
    floating = x.is_floating_point() if isinstance(x, torch.Tensor) else x.dtype.kind == "f"
    size = (x.element_size() if isinstance(x, torch.Tensor) else x.itemsize) if floating else 8
    return _SAFE.get(size, _SAFE[8])


def rescale(x: A, exponent: int | None = None, *, peak: float | None = None) -> tuple[A, int]:
    """``(x · 2⁻ᵉ, e)``: ``x`` scaled exactly (a power of two) so that its largest |value| lies in
    [0.5, 1) when squares of it would overflow or underflow (beyond about 1e±100 in float64,
    1e±15 in float32); ``e = 0`` and ``x`` itself otherwise. A given ``exponent`` is used as is
    (to scale several batches alike).

    For measures that do not depend on the overall scale (correlations, angles, ratios, ranks)
    this makes inputs of any magnitude safe; a scale-dependent result is scaled back by 2ᵉ.
    ``peak``: max |x|, when the caller already has it.
    """
    if exponent is None:
        peak = _max_abs(x) if peak is None else peak
        low, high = _safe_range(x)
        if peak == 0.0 or low <= peak <= high:
            return x, 0
        exponent = math.frexp(peak)[1]
    e = exponent
    if e == 0:
        return x, 0
    if isinstance(x, torch.Tensor):
        t = x if x.is_floating_point() else x.double()
        return cast(A, torch.ldexp(t, torch.tensor(-e, device=t.device))), e
    return cast(A, np.ldexp(x, -e)), e


def check_magnitude(x: ArrayLike, name: str = "x") -> None:
    """ValueError when ``x`` holds values too large (or too small, nonzero) for a scale-dependent
    measure to be computed without overflow or underflow; the message says to rescale."""
    peak = _max_abs(x)
    low, high = _safe_range(x)
    if peak != 0.0 and not low <= peak <= high:
        raise ValueError(
            f"{name} reaches |value| = {peak:.3g}; this measure depends on the scale of the data "
            f"and its squares would {'overflow' if peak > high else 'underflow'} "
            f"({low:g} ≤ |x| ≤ {high:g} is safe for {x.dtype}): rescale {name} first"
        )


def check_model_inputs(inputs: Any, model: torch.nn.Module, name: str = "inputs") -> torch.Tensor:
    """Validated inputs for ``model`` as a tensor: real and finite; integers stay token ids
    (int64) for a model with an embedding, anything else is cast to the dtype of the model's
    parameters (float64 or integer data into a float32 MLP works)."""
    x = check_array(inputs, name, min_ndim=1)
    t = x.detach() if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    tokens = any(isinstance(m, torch.nn.Embedding) for m in model.modules())
    if not t.is_floating_point() and tokens:
        return t.long()
    dtypes = [p.dtype for p in model.parameters() if p.is_floating_point()]
    return t.to(dtypes[0] if dtypes else torch.float32)


def _dims(shape: tuple[int, ...]) -> str:
    return f"(n, {', '.join(map(str, shape))})" if shape else "(n,)"


@torch.no_grad()
def check_model_outputs(
    model: torch.nn.Module,
    x: Any,
    targets: Mapping[str, Any],
    loss: str,
    *,
    ignore: int = -100,
) -> None:
    """Run ``model`` (eval mode, no gradients; its mode is put back) on the first two rows of
    ``x`` and check its output fits every array of ``targets`` (name → targets, e.g. the train
    and test labels) before any training step. ``loss="ce"``: logits shaped
    ``targets.shape + (C,)`` with ``C`` above the largest class id (``ignore`` marks targets to
    skip); ``"mse"``: as many outputs per sample as target values. Raises ValueError naming
    what does not fit: the input shape the model cannot take, classes vs output width, or the
    regression output shape."""
    if loss not in ("ce", "mse"):
        raise ValueError(f"loss must be 'ce' or 'mse', got {loss!r}")
    head = x[:2] if isinstance(x, (np.ndarray, torch.Tensor)) else np.asarray(x)[:2]
    xt = check_model_inputs(head, model, "x")
    device = next((p.device for p in model.parameters()), xt.device)
    try:
        with eval_mode(model):
            out = model(xt.to(device))
    except Exception as err:  # a user's module can fail anywhere on inputs it cannot take
        raise ValueError(
            f"the model cannot take the task's inputs of shape {_dims(tuple(xt.shape[1:]))}: "
            f"{type(err).__name__}: {err}"
        ) from err
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"the model must return a tensor, got {type(out).__name__}")
    for name, y in targets.items():
        yt = torch.as_tensor(check_array(y, name, finite=False))
        if loss == "ce":
            width = int(out.shape[-1]) if out.dim() else 1
            valid = yt[yt != ignore]
            top = int(valid.max()) if valid.numel() else -1
            if top >= width:
                raise ValueError(
                    f"{name}: labels go up to {top} ({top + 1} classes) but the model gives "
                    f"{width} output(s) per sample: build it with {top + 1} outputs, one score "
                    "per class"
                )
            if out.shape[:-1] != yt[:2].shape:
                raise ValueError(
                    f"cross-entropy needs logits of shape targets.shape + (n_classes,), got "
                    f"{tuple(out.shape)} for {name} {tuple(yt[:2].shape)}"
                )
        elif out[0].numel() != yt[0].numel():
            raise ValueError(
                f"{name}: regression targets have shape {_dims(tuple(yt.shape[1:]))} but the "
                f"model outputs {_dims(tuple(out.shape[1:]))}: make its output match the target"
            )
