"""explorer's Jupyter UI: live labs over the compute in ``explorer``, pure figure builders,
and export. Holds no numerics.

Every lab follows one protocol (:mod:`widgets._lab`): ``XLab(..., source=...)``, ``follow``,
``close``, ``views``, ``to_figure``, ``frame``, ``export``, ``status``, ``last_error``,
``selection``. Labs load on first use: ``from widgets import TrainingLab``.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from widgets import theme as _theme  # registers the "explorer" plotly template
from widgets.canvas import HeatmapGrid
from widgets.export import export, export_table

try:
    __version__ = version("explorer")
except PackageNotFoundError:  # pragma: no cover
    __version__ = "0.0.0"

_LABS = {
    "TrainingLab": "widgets.training",
    "AttentionLab": "widgets.attention",
    "SpectrumLab": "widgets.spectrum",
    "GeometryLab": "widgets.geometry",
    "AlignmentLab": "widgets.alignment",
    "ProbeLab": "widgets.probe",
    "SweepLab": "widgets.sweep",
}
__all__ = ["HeatmapGrid", "__version__", "export", "export_table", *_LABS]
del _theme


def __getattr__(name: str) -> Any:
    if name in _LABS:
        return getattr(importlib.import_module(_LABS[name]), name)
    raise AttributeError(f"module 'widgets' has no attribute {name!r}")
