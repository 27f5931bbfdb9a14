"""Export figures and panels: PNG/SVG/PDF through kaleido on the system Chromium, and
self-contained offline HTML with plotly.js inlined. Tables to CSV/parquet/JSON.

Sizes: ``export(fig, "f.pdf", size="column")`` lays the figure out one journal column
(3.5 in) wide with print font sizes (≥ 7 pt); :data:`EXPORT_SIZES` lists the presets
(``"screen"``, ``"column"``, ``"two-column"``). PDF and SVG pages carry the physical size, PNGs
their resolution (pHYs), so a journal column is 3.5 in wherever the file is placed.

One kaleido browser server is started and reused; :func:`warm_up` starts it in the background
(the labs call it when first shown), so even the first export takes a fraction of a second.
MathJax is disabled: nothing is ever fetched. Control characters in text (a NUL byte in a token)
are written as visible escapes (``\\x00``) instead of breaking the export.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import shutil
import struct
import tempfile
import threading
import zlib
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import plotly
import plotly.graph_objects as go
from plotly.basedatatypes import BaseFigure

from widgets.theme import EXPORT_SIZES, PX_PER_INCH, ExportSize, print_figure

__all__ = [
    "EXPORT_FORMATS",
    "EXPORT_SIZES",
    "ChromiumNotFoundError",
    "ExportSize",
    "Exportable",
    "export",
    "export_table",
    "find_chromium",
    "printable_text",
    "to_figure",
    "warm_up",
]

STATIC_FORMATS = ("png", "svg", "pdf")
EXPORT_FORMATS = (*STATIC_FORMATS, "html")
_PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
_start_lock = threading.Lock()
_warm_lock = threading.Lock()
_browser: _Browser | None = None
_warm_thread: threading.Thread | None = None


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
    if isinstance(obj, go.Figure):
        return obj
    if isinstance(obj, BaseFigure):  # a FigureWidget (not named: plotly imports it lazily, ~1 s)
        return go.Figure(obj)
    if hasattr(obj, "to_figure"):
        return to_figure(obj.to_figure())
    raise TypeError(f"cannot export {type(obj).__name__}: expected a plotly Figure or a panel")


class _Browser:
    """The one Chromium of this process that renders static exports (kaleido, one tab), on its
    own event-loop thread; thread-safe (kaleido queues renders for its tab).

    kaleido reloads the tab after every image *before* returning it; here the image is returned
    first and the tab reloads in the background, re-entering kaleido's queue when fresh (an A/B
    on a loaded 2-core machine: median 0.87 s instead of 1.39 s per 2× PNG of a 48-token map).
    """

    def __init__(self) -> None:
        import asyncio

        self._path = find_chromium()  # a clear error before any thread starts
        self._loop = asyncio.new_event_loop()
        threading.Thread(target=self._loop.run_forever, name="explorer-export", daemon=True).start()
        self._stack = contextlib.AsyncExitStack()
        self._reloads: set[Any] = set()
        self._kaleido = self._call(self._open())
        atexit.register(self.close)

    def _call(self, coroutine: Any) -> Any:
        import asyncio

        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    async def _open(self) -> Any:
        import asyncio

        import kaleido

        reloads = self._reloads

        class Kaleido(kaleido.Kaleido):
            async def _return_kaleido_tab(self, tab: Any) -> None:
                task = asyncio.get_running_loop().create_task(super()._return_kaleido_tab(tab))
                reloads.add(task)
                task.add_done_callback(reloads.discard)

        return await self._stack.enter_async_context(
            Kaleido(n=1, path=self._path, mathjax=False, plotlyjs=_PLOTLY_JS.as_uri())
        )

    def render(self, spec: dict[str, Any], opts: dict[str, Any]) -> bytes:
        from kaleido.errors import JavascriptError

        try:
            return bytes(self._call(self._kaleido.calc_fig(spec, opts=opts)))
        except JavascriptError as exc:
            # kaleido 1.x can take the blank page's JS context for a freshly opened tab
            # ("kaleido_scopes is not defined"); the tab is reloaded after a failure, so one
            # retry renders.
            if "kaleido_scopes" not in str(exc):
                raise
            return bytes(self._call(self._kaleido.calc_fig(spec, opts=opts)))

    def close(self) -> None:
        """Stop the browser and the loop (at exit)."""
        import asyncio

        async def stop() -> None:
            await asyncio.gather(*self._reloads, return_exceptions=True)
            await self._stack.aclose()

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)


def _the_browser() -> _Browser:
    global _browser
    with _start_lock:
        if _browser is None:
            _browser = _Browser()
        return _browser


def _render(spec: dict[str, Any], opts: dict[str, Any]) -> bytes:
    return _the_browser().render(spec, opts)


def warm_up() -> threading.Thread:
    """Start the export browser (Chromium, its tab holding plotly.js) in a background thread,
    so the first export costs one render (~0.2 s on a quiet machine) instead of a browser start.

    Idempotent and thread-safe; never blocks the caller (returns the warm-up thread, which
    tests may ``join``). Errors (no Chromium) are left for the first export to report. (A test
    render in the warm-up made the first export slower, not faster: its tab reload was still
    running when the export came.)
    """
    global _warm_thread
    with _warm_lock:
        if _warm_thread is None:
            _warm_thread = threading.Thread(
                target=_warm, name="explorer-export-warm-up", daemon=True
            )
            _warm_thread.start()
        return _warm_thread


def _warm() -> None:
    with contextlib.suppress(Exception):  # reported by the first export that needs the browser
        _the_browser()


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def printable_text(text: str) -> str:
    """``text`` with control characters (NUL, ESC, C1, lone surrogates) written as visible
    escapes (NUL → ``\\x00``, ESC → ``\\x1b``): raw, they break static export and show
    as nothing on screen."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def _printable(node: Any) -> Any:
    """Every string in a plotly JSON structure made printable (arrays of text included)."""
    if isinstance(node, str):
        return printable_text(node)
    if isinstance(node, dict):
        return {k: _printable(v) for k, v in node.items()}
    if isinstance(node, list | tuple):
        return [_printable(v) for v in node]
    if isinstance(node, np.ndarray) and node.dtype.kind in "OU":
        return np.vectorize(_printable, otypes=[object])(node) if node.size else node
    return node


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
    size: str | ExportSize = "screen",
    width: int | None = None,
    height: int | None = None,
) -> Path:
    """Write ``obj`` to ``path``; the suffix picks the format (.png, .svg, .pdf, .html).

    ``size``: a name in :data:`EXPORT_SIZES` — ``"screen"`` (as drawn; PNG at 2×),
    ``"column"`` (3.5 in) or ``"two-column"`` (7 in) with print fonts, PNG at 300 dpi — or an
    :class:`ExportSize`. ``width``/``height`` (CSS px) override the preset's.
    The file appears whole or not at all (written to a temporary file, then renamed).
    """
    out = Path(path)
    fmt = out.suffix.lower().lstrip(".")
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"unknown export format {out.suffix!r}: use .png, .svg, .pdf or .html")
    preset = _preset(size)
    fig = print_figure(to_figure(obj), preset, height_px=height)
    if width is not None:
        fig.layout.width = width
    spec = _printable(fig.to_dict())
    if fmt == "html":
        data = figure_html(go.Figure(spec)).encode()
    else:
        scale = preset.dpi / PX_PER_INCH if fmt == "png" else 1.0
        data = _render(spec, {"format": fmt, "scale": scale})
        if fmt == "png":
            data = _with_dpi(data, preset.dpi)
        elif fmt == "svg":
            data = _svg_in_inches(data)
    out.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(out, data)
    return out


def _preset(size: str | ExportSize) -> ExportSize:
    if isinstance(size, ExportSize):
        return size
    if size not in EXPORT_SIZES:
        raise ValueError(f"unknown export size {size!r}: use one of {sorted(EXPORT_SIZES)}")
    return EXPORT_SIZES[size]


def _with_dpi(png: bytes, dpi: float) -> bytes:
    """``png`` with a pHYs chunk saying ``dpi`` (so viewers and LaTeX place it at its size)."""
    ppm = round(dpi / 0.0254)
    body = b"pHYs" + struct.pack(">IIB", ppm, ppm, 1)
    chunk = struct.pack(">I", 9) + body + struct.pack(">I", zlib.crc32(body))
    end_of_ihdr = 8 + 8 + 13 + 4  # signature, IHDR length+type, IHDR data, CRC
    return png[:end_of_ihdr] + chunk + png[end_of_ihdr:]


_SVG_SIZE = re.compile(rb'(<svg[^>]*?) width="([\d.]+)" height="([\d.]+)"')


def _svg_in_inches(svg: bytes) -> bytes:
    """Root ``width``/``height`` in inches (the viewBox keeps the CSS-px drawing)."""

    def inches(m: re.Match[bytes]) -> bytes:
        w, h = (float(v) / PX_PER_INCH for v in (m.group(2), m.group(3)))
        return m.group(1) + f' width="{w:.4g}in" height="{h:.4g}in"'.encode()

    return _SVG_SIZE.sub(inches, svg, count=1)


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
