"""Exceptions and warnings raised by explorer, and the lazy import of optional dependencies."""

from __future__ import annotations

import importlib
from types import ModuleType


class ExplorerWarning(UserWarning):
    """A result was computed but deserves attention (e.g. an estimator outside its valid regime)."""


class MissingDependencyError(ImportError):
    """An optional dependency is not installed; the message says which extra provides it."""


def optional_import(module: str, extra: str, package: str | None = None) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` with an install hint.

    ``extra`` names the ``pip install 'explorer[extra]'`` group that provides it.
    """
    try:
        return importlib.import_module(module)
    except ImportError as err:
        name = package or module.split(".")[0]
        raise MissingDependencyError(
            f"{module!r} is needed for this feature but is not installed. "
            f"Install it with `pip install 'explorer[{extra}]'` (or `pip install {name}`)."
        ) from err
