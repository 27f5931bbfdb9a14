"""Export figures and panels: PNG/SVG/PDF through kaleido on the system Chromium, and
self-contained offline HTML with plotly.js inlined. Tables to CSV/parquet/JSON.

One kaleido browser server is started on first static export and reused (first export ~5 s,
then ~1 s each instead of ~6 s). MathJax is disabled: nothing is ever fetched.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any, Protocol

import pandas as pd
import plotly
import plotly.graph_objects as go

__all__ = [
    "ChromiumNotFoundError",
    "Exportable",
    "export",
    "export_table",
    "find_chromium",
    "to_figure",
]

STATIC_FORMATS = ("png", "svg", "pdf")
_PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
_lock = threading.Lock()
_server_running = False


class ChromiumNotFoundError(RuntimeError):
    """No Chromium/Chrome binary for static export."""


class Exportable(Protocol):
    """A panel that can be exported: it renders its current view as a plotly Figure."""

    def to_figure(self) -> go.Figure: ...


def find_chromium() -> str:
    """Path of the system Chromium (``$BROWSER_PATH`` first), or a ChromiumNotFoundError."""
    for candidate in (
        os.environ.get("BROWSER_PATH"),
        "chromium",
        "chromium-browser",
        "google-chrome",
    ):
        found = candidate and shutil.which(candidate)
        if found:
            return found
    raise ChromiumNotFoundError(
        "PNG/SVG/PDF export needs Chromium and none was found on PATH. Install it with "
        "`sudo apt-get install chromium` (Debian/Ubuntu) or set BROWSER_PATH to a Chrome binary. "
        "HTML export works without it."
    )


def to_figure(obj: go.Figure | Exportable) -> go.Figure:
    """A plain ``go.Figure`` from a Figure, FigureWidget or any object with ``to_figure()``."""
    if isinstance(obj, go.FigureWidget):
        return go.Figure(obj)
    if isinstance(obj, go.Figure):
        return obj
    if hasattr(obj, "to_figure"):
        return to_figure(obj.to_figure())
    raise TypeError(f"cannot export {type(obj).__name__}: expected a plotly Figure or a panel")


def _ensure_server() -> None:
    global _server_running
    import kaleido

    with _lock:
        if not _server_running:
            kaleido.start_sync_server(
                n=1,
                path=find_chromium(),
                mathjax=False,
                plotlyjs=_PLOTLY_JS.as_uri(),
                silence_warnings=True,
            )
            atexit.register(kaleido.stop_sync_server, silence_warnings=True)
            _server_running = True


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def figure_html(fig: go.Figure) -> str:
    """Self-contained HTML page for ``fig``: plotly.js inlined, no MathJax, no CDN."""
    return fig.to_html(
        include_plotlyjs=True,
        include_mathjax=False,
        full_html=True,
        config={"displaylogo": False, "toImageButtonOptions": {"format": "svg"}},
    )


def export(
    obj: go.Figure | Exportable,
    path: str | os.PathLike[str],
    *,
    width: int | None = None,
    height: int | None = None,
    scale: float = 2.0,
) -> Path:
    """Write ``obj`` to ``path``; the suffix picks the format (.png, .svg, .pdf, .html).

    The file appears whole or not at all (written to a temporary file, then renamed).
    """
    out = Path(path)
    fmt = out.suffix.lower().lstrip(".")
    fig = to_figure(obj)
    if fmt == "html":
        data = figure_html(fig).encode()
    elif fmt in STATIC_FORMATS:
        import kaleido

        _ensure_server()
        opts: dict[str, Any] = {"format": fmt, "scale": scale}
        opts.update({k: v for k, v in (("width", width), ("height", height)) if v is not None})
        data = kaleido.calc_fig_sync(fig.to_dict(), opts=opts)
    else:
        raise ValueError(f"unknown export format {out.suffix!r}: use .png, .svg, .pdf or .html")
    out.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(out, data)
    return out


def export_table(df: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write a DataFrame to .csv, .parquet or .json (records), atomically."""
    out = Path(path)
    fmt = out.suffix.lower()
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=fmt)
    os.close(fd)
    try:
        if fmt == ".csv":
            df.to_csv(tmp, index=False)
        elif fmt == ".parquet":
            df.to_parquet(tmp, index=False)
        elif fmt == ".json":
            df.to_json(tmp, orient="records")
        else:
            raise ValueError(f"unknown table format {out.suffix!r}: use .csv, .parquet or .json")
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return out
