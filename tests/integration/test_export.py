"""Figure export: every format, offline, atomic, escaped, with one reused browser server."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
from PIL import Image
from pypdf import PdfReader

from widgets import export, export_table
from widgets.export import (
    EXPORT_SIZES,
    ChromiumNotFoundError,
    find_chromium,
    to_figure,
    warm_up,
)
from widgets.figures.attention import attention_map_figure

EVIL = "<script>alert(1)</script>"


def _figure() -> go.Figure:
    fig = go.Figure(go.Heatmap(z=[[0, 1], [1, 0]], x=["a", EVIL], y=["b", "c"]))
    fig.update_layout(template="explorer", title=f"token {EVIL}")
    return fig


def test_html_is_self_contained_and_escaped(tmp_path: Path) -> None:
    html = export(_figure(), tmp_path / "f.html").read_text()
    tags = re.findall(r"<(script|link|img|iframe)\b([^>]*)>", html)
    assert tags and all("src=" not in attrs and "href=" not in attrs for _, attrs in tags)
    outside_scripts = re.sub(r"<script[^>]*>.*?</script>", "", html, flags=re.S)
    assert "http" not in outside_scripts
    assert EVIL not in html  # the token is escaped inside the JSON payload
    assert "alert(1)" in html


@pytest.mark.parametrize("fmt,magic", [("png", b"\x89PNG"), ("svg", b"<svg"), ("pdf", b"%PDF")])
def test_static_formats(tmp_path: Path, fmt: str, magic: bytes) -> None:
    out = export(_figure(), tmp_path / f"f.{fmt}", width=300, height=200)
    assert magic in out.read_bytes()[:200]


def test_warm_up_is_idempotent_and_the_server_is_reused(tmp_path: Path) -> None:
    t0 = time.perf_counter()
    thread = warm_up()
    assert time.perf_counter() - t0 < 0.5  # returns at once; the browser starts behind it
    assert warm_up() is thread
    thread.join(timeout=60)
    assert not thread.is_alive()
    t0 = time.perf_counter()
    for i in range(3):
        export(_figure(), tmp_path / f"again{i}.svg")
    assert (time.perf_counter() - t0) / 3 < 3.0  # a fresh browser per export costs ~3-6 s


def _pdf_text_sizes(path: Path) -> list[tuple[str, float]]:
    """(text, size in pt on the page) of every text run in a one-page PDF."""
    sizes: list[tuple[str, float]] = []

    def visit(text: str, cm: list[float], tm: list[float], _font: object, size: float) -> None:
        if text.strip():
            scale = np.hypot(cm[0], cm[1]) * np.hypot(tm[0], tm[1])
            sizes.append((text.strip(), size * scale))

    PdfReader(path).pages[0].extract_text(visitor_text=visit)
    return sizes


@pytest.mark.parametrize("size", ["column", "two-column"])
def test_print_sizes_are_physical_with_print_fonts(tmp_path: Path, size: str) -> None:
    """A column figure is 3.5 in wide in every format, and no text is under 7 pt."""
    preset = EXPORT_SIZES[size]
    assert preset.width_in is not None
    tokens = ["the", "cat", "the", "hat", "and", "the", "bat", "<script>"]
    fig = attention_map_figure(np.full((8, 8), 1 / 8), tokens, title="a long title " * 6)
    pdf = export(fig, tmp_path / "f.pdf", size=size)
    page = PdfReader(pdf).pages[0]
    assert float(page.mediabox.width) == pytest.approx(72 * preset.width_in, abs=1)
    assert float(page.mediabox.height) <= 72 * preset.width_in * preset.max_aspect + 1
    sizes = _pdf_text_sizes(pdf)
    texts = " ".join(t for t, _ in sizes)
    assert "attention weight" in texts and "key" in texts and "query" in texts
    assert min(s for _, s in sizes) >= 7.0, sorted(sizes, key=lambda ts: ts[1])[:3]

    svg = export(fig, tmp_path / "f.svg", size=size).read_text()
    root = re.search(
        r'<svg[^>]* width="([\d.]+)in" height="([\d.]+)in"[^>]*viewBox="0 0 ([\d.]+)', svg
    )
    assert root and float(root[1]) == pytest.approx(preset.width_in, abs=0.01)
    pt_per_unit = float(root[1]) * 72 / float(root[3])
    fonts = [float(f) * pt_per_unit for f in re.findall(r"font-size: ([\d.]+)px", svg)]
    assert fonts and min(fonts) >= 7.0

    png = Image.open(export(fig, tmp_path / "f.png", size=size))
    dpi = png.info["dpi"]
    assert dpi[0] == pytest.approx(preset.dpi, abs=0.5)
    assert png.size[0] / dpi[0] == pytest.approx(preset.width_in, abs=0.01)


def test_control_characters_in_tokens_export(tmp_path: Path) -> None:
    """A NUL byte (or ESC, or a lone surrogate) in a token used to fail with plotly error 525."""
    tokens = ["a\x00b", "\x1b[31m", "c\ud800", "<script>"]
    fig = attention_map_figure(np.eye(4), tokens)
    assert export(fig, tmp_path / "t.png").read_bytes()[:4] == b"\x89PNG"
    svg = export(fig, tmp_path / "t.svg").read_text()
    assert r"a\x00b" in svg and r"\x1b[31m" in svg and r"c\ud800" in svg
    assert "&#60;script&#62;" in svg  # the token shows as typed, never as a tag
    assert "\x00" not in svg and "<script>" not in svg


def test_unknown_size_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"unknown export size 'poster'.*column"):
        export(_figure(), tmp_path / "f.png", size="poster")
    assert list(tmp_path.iterdir()) == []


def test_panel_and_widget_are_exportable(tmp_path: Path) -> None:
    class Panel:
        def to_figure(self) -> go.Figure:
            return _figure()

    assert isinstance(to_figure(Panel()), go.Figure)
    assert isinstance(to_figure(go.FigureWidget(_figure())), go.Figure)
    assert export(Panel(), tmp_path / "p.html").stat().st_size > 1000
    with pytest.raises(TypeError, match="cannot export"):
        to_figure(42)  # type: ignore[arg-type]


def test_bad_format_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown export format"):
        export(_figure(), tmp_path / "f.jpeg")
    assert list(tmp_path.iterdir()) == []


def test_missing_chromium_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv("BROWSER_PATH", raising=False)
    with pytest.raises(ChromiumNotFoundError, match="apt-get install chromium"):
        find_chromium()


def test_tables(tmp_path: Path) -> None:
    df = pd.DataFrame({"step": [0, 1], "metric": ["loss", "loss"], "value": [1.0, 0.5]})
    for suffix in (".csv", ".parquet", ".json"):
        out = export_table(df, tmp_path / f"t{suffix}")
        back = {".csv": pd.read_csv, ".parquet": pd.read_parquet, ".json": pd.read_json}[suffix](
            out
        )
        assert back["value"].tolist() == [1.0, 0.5]
    with pytest.raises(ValueError, match="unknown table format"):
        export_table(df, tmp_path / "t.xlsx")


OFFLINE_SCRIPT = textwrap.dedent(
    """
    import socket, sys
    attempts = []
    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network blocked by test")
    _connect = socket.socket.connect
    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            refuse(address)
        return _connect(self, address)
    socket.socket.connect = connect
    socket.socket.connect_ex = lambda self, address: refuse(address)
    socket.create_connection = refuse
    socket.getaddrinfo = refuse

    import explorer, explorer.analysis, explorer.device
    import plotly.graph_objects as go
    import widgets
    fig = go.Figure(go.Scatter(y=[1, 3, 2]), layout=dict(template="explorer", title="$x^2$"))
    widgets.export(fig, sys.argv[1] + "/off.html")
    widgets.export(fig, sys.argv[1] + "/off.png")
    print("attempts", len(attempts))
    """
)


def test_export_with_network_blocked(tmp_path: Path) -> None:
    cmd = [sys.executable, "-c", OFFLINE_SCRIPT, str(tmp_path)]
    # As root, also cut the whole process tree (Chromium included) off the network.
    if os.geteuid() == 0 and shutil.which("unshare"):
        cmd = ["unshare", "--net", *cmd]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "attempts 0" in out.stdout
    assert (tmp_path / "off.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "off.html").stat().st_size > 1_000_000


def test_a_plain_figure_is_prepared_without_plotly_widgets() -> None:
    """Preparing a plain figure must not import plotly's FigureWidget (with IPython's display
    machinery): that lazy import cost ~1 s of a process's first export."""
    code = textwrap.dedent(
        """
        import sys
        import plotly.graph_objects as go
        from widgets.export import to_figure
        from widgets.theme import EXPORT_SIZES, print_figure
        print_figure(to_figure(go.Figure(go.Heatmap(z=[[1, 2]]))), EXPORT_SIZES["column"]).to_dict()
        print("plotly.basewidget" in sys.modules)
        """
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
    )  # fmt: skip
    assert done.stdout.strip() == "False"
