"""Exceptions and warnings raised by explorer, the lazy import of optional dependencies, and the
deprecation helpers used when a public name changes (old spellings warn for one release)."""

from __future__ import annotations

import functools
import importlib
import warnings
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any, ParamSpec, TypeVar

__all__ = [
    "ExplorerWarning",
    "MissingDependencyError",
    "moved_attribute",
    "optional_import",
    "renamed_keywords",
    "warn_deprecated",
]

P = ParamSpec("P")
R = TypeVar("R")


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


def warn_deprecated(old: str, new: str, *, stacklevel: int = 3) -> None:
    """``DeprecationWarning``: ``old`` still works in this release and goes in the next; use ``new``."""
    warnings.warn(
        f"{old} is deprecated and will be removed in the next release; use {new} instead",
        DeprecationWarning,
        stacklevel=stacklevel,
    )


def renamed_keywords(**renames: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorator: accept each old keyword (``old="new"``) for one more release, with a warning.

    Passing both spellings is a ``TypeError``. The wrapped function keeps its signature.
    """

    def wrap(fn: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(fn)
        def inner(*args: P.args, **kwargs: P.kwargs) -> R:
            for old, new in renames.items():
                if old in kwargs:
                    if new in kwargs:
                        raise TypeError(
                            f"{fn.__qualname__}() got both {new}= and its deprecated spelling {old}="
                        )
                    warn_deprecated(f"{fn.__qualname__}({old}=...)", f"{new}=")
                    kwargs[new] = kwargs.pop(old)
            return fn(*args, **kwargs)

        return inner

    return wrap


def moved_attribute(module: str, name: str, moved: Mapping[str, str]) -> Any:
    """For a module's ``__getattr__``: the object a moved public name now lives at, with a
    warning; ``moved`` maps old name → new dotted path. Unknown names raise AttributeError."""
    if name not in moved:
        raise AttributeError(f"module {module!r} has no attribute {name!r}")
    target = moved[name]
    owner, _, attr = target.rpartition(".")
    warn_deprecated(f"{module}.{name}", target, stacklevel=4)  # the caller of __getattr__
    return getattr(importlib.import_module(owner), attr)
