"""explorer: look inside neural networks — attention, frequency spectra, latent geometry and
representation alignment — with numba CPU kernels and torch CUDA paths behind one API.

Subpackages load on first use, so ``import explorer`` is cheap::

    import explorer
    explorer.analysis.alignment.linear_cka(x, y)

Compute only: this package never imports a UI library (see the ``widgets`` package).
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("explorer")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"

__all__ = [
    "__version__",
    "analysis",
    "data",
    "device",
    "errors",
    "interventions",
    "kernels",
    "models",
    "train",
    "validation",
]
_SUBMODULES = frozenset(__all__) - {"__version__"}

if TYPE_CHECKING:
    from explorer import (
        analysis,
        data,
        device,
        errors,
        interventions,
        kernels,
        models,
        train,
        validation,
    )


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"explorer.{name}")
    raise AttributeError(f"module 'explorer' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
