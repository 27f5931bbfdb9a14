"""Deprecated location of :func:`explorer.frames.tidy` (moved so that ``analysis`` and ``train``
no longer import each other); importing ``tidy`` from here warns and will stop working."""

from __future__ import annotations

import warnings
from typing import Any

__all__: list[str] = []


def __getattr__(name: str) -> Any:
    if name == "tidy":
        warnings.warn(
            "explorer.analysis.frames.tidy moved to explorer.frames.tidy; import it from there",
            DeprecationWarning,
            stacklevel=2,
        )
        from explorer.frames import tidy

        return tidy
    raise AttributeError(f"module 'explorer.analysis.frames' has no attribute {name!r}")
