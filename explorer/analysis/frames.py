"""Deprecated location of :func:`explorer.frames.tidy` (moved so that ``analysis`` and ``train``
no longer import each other); importing ``tidy`` from here warns for one release."""

from __future__ import annotations

from typing import Any

from explorer.errors import moved_attribute

__all__: list[str] = []


def __getattr__(name: str) -> Any:
    return moved_attribute(__name__, name, {"tidy": "explorer.frames.tidy"})
