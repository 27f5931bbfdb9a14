"""explorer's Jupyter UI: live labs (panels) over the compute in ``explorer``, pure figure
builders, and export. Holds no numerics.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from widgets import theme as _theme  # registers the "explorer" plotly template
from widgets.canvas import HeatmapGrid
from widgets.export import export, export_table

try:
    __version__ = version("explorer")
except PackageNotFoundError:  # pragma: no cover
    __version__ = "0.0.0"

__all__ = ["HeatmapGrid", "__version__", "export", "export_table"]
del _theme
