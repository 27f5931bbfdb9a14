"""The lab protocol: one shape for every lab (training, attention, spectrum, geometry,
alignment, probe, sweep).

A lab shows *views* of a *source*. A source yields snapshots — step, parameters, recorded
activations, attention, predictions, metrics — and rebuilds the model at any step (see
:mod:`explorer.train.sources`): a live :class:`~widgets.TrainingLab` or
:class:`~explorer.train.Recorder`, a run directory written by explorer (a TrainingLab's
Save, a sweep trial), a model with inputs (explorer's or your own ``nn.Module``), or a
Hugging Face model folder with texts. Every lab speaks the same words::

    lab = XLab(..., source=None, **view_options)   # source: anything as_source() accepts
    lab.follow(source)        # look at another source (unsubscribes from the old one)
    lab.close()               # unsubscribe, stop threads, remove the widget; idempotent
    lab.views                 # names of the views the lab can show now
    lab.to_figure(view=None)  # the view as a plotly Figure (None: the view on screen)
    lab.frame(view=None)      # exactly the data that view shows, as a tidy DataFrame
    lab.export(path, view=None, size="screen")
                              # suffix picks the format: .png .svg .pdf .html (figure) or
                              # .csv .parquet .json (frame); size="column" (3.5 in) or
                              # "two-column" (7 in) for journal figures
    lab.status                # the status line as plain text
    lab.last_error            # "Type: message" of the last failed action, or None
    lab.selection             # what is selected (layer, head, point, …) as a dict
    lab.panels                # the live widget of each view on screen, by view name
    lab.wait()                # block until snapshots that arrived are drawn (scripts, tests)

The base class owns what every lab shares: one status line (errors show there and never
vanish into the browser console), one busy indicator ("computing UMAP…"), one export bar
(view, format, journal size, Export → "wrote <path>"), a step slider over the source's
snapshots, and the live subscription with a leading + trailing throttle: the first snapshot
after a quiet spell is drawn at once, later ones at most every ``min_interval_s`` seconds in
the lab's own thread, and the last one is always drawn. A lab itself is wiring only:
selection → one analysis call (``explorer``) → one figure builder (``widgets.figures``).

Writing a lab: subclass :class:`Lab`, build the body widgets and call :meth:`Lab._set_body`,
then implement :meth:`_show_snapshot` (draw a snapshot), :meth:`_available_views`,
:meth:`_current_view`, :meth:`_figure`, :meth:`_frame` and :attr:`selection`; optionally
:meth:`_on_follow` (a new source or a new run: drop what was computed for the old one).
"""

from __future__ import annotations

import html
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import ipywidgets as W
import pandas as pd
import plotly.graph_objects as go

from explorer.train.sources import as_source
from widgets.export import EXPORT_FORMATS, EXPORT_SIZES, export_table, warm_up
from widgets.export import export as export_figure

__all__ = ["FIGURE_FORMATS", "SIZES", "TABLE_FORMATS", "Lab", "Throttle", "close_tree"]

FIGURE_FORMATS = EXPORT_FORMATS
TABLE_FORMATS = ("csv", "parquet", "json")
_SIZE_LABELS = {"screen": "screen size", "column": "one column (3.5 in)",
                "two-column": "two columns (7 in)"}  # fmt: skip
SIZES = tuple((_SIZE_LABELS.get(name, name), name) for name in EXPORT_SIZES)
_NOTHING = object()
_LABS: weakref.WeakSet[Lab] = weakref.WeakSet()


def close_tree(widget: W.Widget) -> None:
    """Close ``widget`` and every widget under it: ipywidgets keeps each one (its state, its
    comm) until it is closed, and closing a box leaves its children open. Parent first: the page
    then drops the whole tree at once, while closing leaves first re-lays out the parts still
    shown, and a plotly figure answers that resize 100 ms later on a comm closed meanwhile (an
    error in the page). Layout and style models stay open (small, and often shared)."""
    widget.close()
    for child in getattr(widget, "children", ()):
        close_tree(child)


class Throttle:
    """Call ``fn(item)`` for submitted items in a worker thread, leading and trailing: an item
    submitted after a quiet spell runs at once, items submitted meanwhile collapse to the
    latest, which runs ``interval`` seconds after the previous call started. The worker exits
    after ``idle_s`` seconds without work and restarts on the next submit."""

    def __init__(
        self, fn: Callable[[Any], None], interval: float, *, name: str, idle_s: float = 2.0
    ) -> None:
        self._fn = fn
        self.interval = float(interval)
        self._name = name
        self._idle_s = idle_s
        self._cond = threading.Condition()
        self._pending: Any = _NOTHING
        self._running = False
        self._last = float("-inf")
        self._thread: threading.Thread | None = None
        self._closed = False

    def submit(self, item: Any) -> None:
        """Hand ``item`` over (cheap: callable from a training thread)."""
        with self._cond:
            if self._closed:
                return
            self._pending = item
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name=self._name, daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def _work(self) -> None:
        while True:
            with self._cond:
                idle_since = time.monotonic()
                while self._pending is _NOTHING and not self._closed:
                    if time.monotonic() - idle_since > self._idle_s:
                        self._thread = None
                        return
                    self._cond.wait(0.1)
                if self._closed:
                    self._thread = None
                    self._cond.notify_all()
                    return
                wait = self._last + self.interval - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue  # re-check: closed, or a newer item
                item, self._pending = self._pending, _NOTHING
                self._running = True
                self._last = time.monotonic()
            try:
                self._fn(item)
            finally:
                with self._cond:
                    self._running = False
                    self._cond.notify_all()

    def wait(self, timeout: float = 60.0) -> bool:
        """Block until every submitted item is handled; False on timeout."""
        end = time.monotonic() + timeout
        with self._cond:
            while self._pending is not _NOTHING or self._running:
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.1))
        return True

    def close(self) -> None:
        """Drop what is pending and stop the worker (a call in progress finishes)."""
        with self._cond:
            self._closed = True
            self._pending = _NOTHING
            self._cond.notify_all()


class Lab(W.VBox):
    """Base of every lab: the protocol in the module docstring.

    ``out_dir``: where the export bar writes. ``min_interval_s``: at most one live redraw per
    this many seconds (leading + trailing).
    """

    kind: ClassVar[str] = "lab"  # CSS class xp-<kind>-lab, export file prefix

    def __init__(self, *, out_dir: str | Path = "exports", min_interval_s: float = 0.25) -> None:
        if not min_interval_s >= 0:
            raise ValueError(f"min_interval_s must be >= 0, got {min_interval_s!r}")
        super().__init__(layout=W.Layout(width="100%"))  # the output area's width, no more
        self.add_class("xp-lab")
        self.add_class(f"xp-{self.kind}-lab")
        self.out_dir = Path(out_dir)
        self.last_error: str | None = None
        self._lock = threading.RLock()
        self._source: Any = None
        self._unsubscribe: Callable[[], None] | None = None
        self._run_id: Any = None
        self._latest_followed = True  # the step slider sits on the newest snapshot
        self._shown_step: int | None = None
        self._closed = False
        self._busy_depth = 0
        self._status_plain = ""
        self._lab_notes: tuple[str, ...] = ()  # the lab's own caveats (e.g. undefined measures)
        self._syncing_steps = False
        self._throttle = Throttle(self._on_live, min_interval_s, name=f"xp-{self.kind}-lab")
        self._build_chrome()
        _LABS.add(self)

    # ================================================================== protocol
    @property
    def source(self) -> Any:
        """The source followed (see :func:`explorer.train.sources.as_source`), or None."""
        return self._source

    @property
    def views(self) -> tuple[str, ...]:
        """Names of the views this lab can show now."""
        return tuple(self._available_views())

    @property
    def status(self) -> str:
        """The status line as plain text (with the source's notes, if any)."""
        notes = self._notes()
        return " · ".join([t for t in (self._status_plain, *notes) if t])

    @property
    def selection(self) -> dict[str, Any]:
        """What is selected in the lab, by name."""
        return {}

    @property
    def panels(self) -> dict[str, W.Widget]:
        """The live widget of each view on screen, by view name."""
        return {}

    @property
    def shown_step(self) -> int | None:
        """The step of the snapshot on view (None before the first one)."""
        return self._shown_step

    def follow(self, source: Any) -> Lab:
        """Look at ``source`` (replacing the one followed): its newest snapshot is drawn now,
        new ones as they arrive."""
        src = as_source(source)
        with self._lock:
            self._check_open()
            self._stop_following()
            self._source = src
            self._run_id = getattr(src, "run_id", 0)
            self._latest_followed = True
            self._on_follow(src)
            latest = src.latest
            if latest is not None:
                self._render_snapshot(latest)
            else:
                self._set_status("waiting for the first snapshot")
            self._sync_steps()
            self._unsubscribe = src.subscribe(self._throttle.submit)
        return self

    def close(self) -> None:
        """Unsubscribe from the source, stop the lab's threads, close the widget (twice is
        fine)."""
        if getattr(self, "_closed", True):
            return
        with self._lock:
            self._closed = True
            self._stop_following()
            self._throttle.close()
            super().close()  # the lab first, then what is in it (see close_tree)
            for child in self.children:
                close_tree(child)
            self._on_close()

    def to_figure(self, view: str | None = None) -> go.Figure:
        """``view`` (default: the one on screen) as a plotly Figure."""
        with self._lock:
            return self._figure(self._resolve_view(view))

    def frame(self, view: str | None = None) -> pd.DataFrame:
        """The data ``view`` (default: the one on screen) shows, as a tidy DataFrame."""
        with self._lock:
            return self._frame(self._resolve_view(view))

    def export(self, path: str | Path, view: str | None = None, *, size: str = "screen") -> Path:
        """Write ``view`` to ``path``: a figure for .png/.svg/.pdf/.html (``size``:
        ``"screen"``, ``"column"`` — 3.5 in — or ``"two-column"`` — 7 in — with print fonts),
        its data for .csv/.parquet/.json."""
        out = Path(path)
        fmt = out.suffix.lower().lstrip(".")
        if fmt in TABLE_FORMATS:
            return export_table(self.frame(view), out)
        if fmt not in FIGURE_FORMATS:
            raise ValueError(
                f"unknown export format {out.suffix!r}: use one of "
                f"{', '.join('.' + f for f in FIGURE_FORMATS + TABLE_FORMATS)}"
            )
        if size not in EXPORT_SIZES:
            raise ValueError(f"size must be one of {list(EXPORT_SIZES)}, got {size!r}")
        return export_figure(self.to_figure(view), out, size=size)

    def wait(self, timeout: float = 60.0) -> None:
        """Block until every snapshot that arrived is drawn (for scripts and tests)."""
        if not self._throttle.wait(timeout):
            raise TimeoutError(f"{type(self).__name__} still drawing after {timeout} s")

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        warm_up()  # start the export browser in the background: the first export is fast
        return super()._repr_mimebundle_(**kwargs)

    # ================================================================== for subclasses
    def _show_snapshot(self, snap: Any) -> None:
        """Draw ``snap`` (called with the lab's lock held)."""

    def _on_follow(self, source: Any) -> None:
        """A new source, or the source started a new run: forget what belongs to the old."""

    def _on_close(self) -> None:
        """Stop what the subclass started (threads, timers)."""

    def _available_views(self) -> Sequence[str]:
        raise NotImplementedError

    def _current_view(self) -> str:
        """The view on screen (the default of to_figure/frame/export)."""
        return self.views[0]

    def _figure(self, view: str) -> go.Figure:
        raise NotImplementedError

    def _frame(self, view: str) -> pd.DataFrame:
        raise NotImplementedError

    def _set_body(self, *widgets: W.Widget) -> None:
        """Lay the lab out: its own widgets, then steps, export bar, busy and status."""
        self.children = [*widgets, self._steps_row, self._export_bar, self._footer]

    # ================================================================== status, busy, errors
    def _set_status(self, text: str, *, error: bool = False) -> None:
        self._status_plain = text
        color = "#b00020" if error else "#333"
        notes = "".join(
            f"<br><span style='color:#8a5a00'>⚠ {html.escape(n)}</span>" for n in self._notes()
        )
        self._status_line.value = f"<span style='color:{color}'>{html.escape(text)}</span>{notes}"

    def _notes(self) -> tuple[str, ...]:
        return (*(getattr(self._source, "notes", ()) or ()), *self._lab_notes)

    def _fail(self, err: BaseException, what: str = "") -> None:
        self.last_error = f"{type(err).__name__}: {err}"
        self._set_status(f"⚠ {what}{self.last_error}", error=True)

    def _guard(self, fn: Callable[[], Any], what: str = "", *, clear: bool = True) -> bool:
        """Run ``fn``; an exception shows in the status line (``last_error``), the lab lives
        on. A success clears ``last_error`` unless ``clear=False`` (redraws keep an earlier
        error visible). Returns whether it succeeded."""
        try:
            fn()
        except Exception as err:
            self._fail(err, what)
            return False
        if clear:
            self.last_error = None
        return True

    @contextmanager
    def busy(self, text: str) -> Iterator[None]:
        """Show ``text`` ("computing UMAP…") with a spinner while the block runs."""
        with self._lock:
            self._busy_depth += 1
            self._busy_line.value = f"<span class='xp-lab-busy-text'>⏳ {html.escape(text)}</span>"
            self._busy_line.layout.display = ""
        try:
            yield
        finally:
            with self._lock:
                self._busy_depth -= 1
                if self._busy_depth == 0:
                    self._busy_line.layout.display = "none"
                    self._busy_line.value = ""

    @property
    def busy_text(self) -> str:
        """What the busy indicator says now ('' when idle)."""
        text = self._busy_line.value.removeprefix("<span class='xp-lab-busy-text'>⏳ ")
        return html.unescape(text.removesuffix("</span>"))

    # ================================================================== following
    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"this {type(self).__name__} is closed")

    def _stop_following(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def _render_snapshot(self, snap: Any) -> None:
        """Show ``snap`` in every view (errors go to the status line)."""
        if self._guard(lambda: self._show_snapshot(snap), clear=False):
            self._shown_step = int(snap.step)

    def _on_live(self, snap: Any) -> None:
        """A snapshot from the source (in the throttle's thread)."""
        with self._lock:
            src = self._source
            if self._closed or src is None:
                return
            run_id = getattr(src, "run_id", 0)
            if run_id != self._run_id:  # the source restarted (reset, new task)
                self._run_id = run_id
                self._latest_followed = True
                self._guard(lambda: self._on_follow(src))
            if self._latest_followed:
                latest = src.latest
                self._render_snapshot(latest if latest is not None else snap)
            self._sync_steps()

    def _sync_steps(self) -> None:
        """The step slider: one position per snapshot; hidden for a single snapshot."""
        src = self._source
        steps = list(src.steps) if src is not None else []
        slider = self._step_slider
        self._syncing_steps = True
        try:
            with slider.hold_sync():
                slider.max = max(len(steps) - 1, 0)
                shown = self._shown_step
                if shown in steps and not self._latest_followed:
                    slider.value = steps.index(shown)
                else:
                    slider.value = slider.max
        finally:
            self._syncing_steps = False
        self._steps_row.layout.display = "" if len(steps) > 1 else "none"
        self._step_label.value = (
            "" if shown is None else f"step {shown} of {steps[-1] if steps else 0}"
        )

    def _on_step_slider(self, change: dict[str, Any]) -> None:
        if self._syncing_steps or self._source is None:
            return
        steps = list(self._source.steps)
        if not steps:
            return
        index = min(int(change["new"]), len(steps) - 1)
        self.show_step(steps[index])

    def show_step(self, step: int) -> None:
        """Show the snapshot at (or just before) ``step`` in every view, as the step slider
        does; the lab keeps showing it while new snapshots arrive, until the slider is back
        at the newest."""
        if self._source is None:
            raise RuntimeError("this lab follows no source: nothing to step through")
        with self._lock:
            steps = list(self._source.steps)
            snap = self._source.at(int(step))
            self._latest_followed = bool(steps) and snap.step == steps[-1]
            with self.busy(f"loading step {snap.step}…"):
                self._render_snapshot(snap)
            self._sync_steps()

    # ================================================================== export bar
    def _build_chrome(self) -> None:
        k = self.kind
        self._status_line = W.HTML(layout=W.Layout(min_height="1.5em"))
        self._status_line.add_class("xp-lab-status")
        self._status_line.add_class(f"xp-{k}-status")
        self._busy_line = W.HTML(layout=W.Layout(display="none"))
        self._busy_line.add_class("xp-lab-busy")
        self._footer = W.VBox([self._busy_line, self._status_line])
        self._step_slider = W.IntSlider(
            value=0, min=0, max=0, description="snapshot", readout=False,
            continuous_update=False, layout=W.Layout(width="420px"),
        )  # fmt: skip
        self._step_slider.add_class("xp-lab-steps")
        self._step_slider.add_class(f"xp-{k}-steps")
        self._step_slider.observe(self._on_step_slider, names="value")
        self._step_label = W.Label()
        self._step_label.add_class("xp-lab-step-label")
        self._steps_row = W.HBox(
            [self._step_slider, self._step_label], layout=W.Layout(display="none")
        )
        self._export_view = W.Dropdown(
            options=[], description="export", layout=W.Layout(width="230px"),
            style={"description_width": "50px"},
        )  # fmt: skip
        self._export_format = W.Dropdown(
            options=FIGURE_FORMATS + TABLE_FORMATS, value="png", layout=W.Layout(width="90px")
        )
        self._export_size = W.Dropdown(
            options=SIZES, value="screen", layout=W.Layout(width="170px")
        )
        self._export_button = W.Button(
            description="Export", icon="download", tooltip="write the view (or its data) to a file",
            layout=W.Layout(width="100px"),
        )  # fmt: skip
        self._export_button.add_class("xp-lab-export-button")
        self._export_button.on_click(lambda _: self._export_clicked())
        self._export_size.observe(self._on_format, names="value")
        self._export_format.observe(self._on_format, names="value")
        self._export_bar = W.HBox(
            [self._export_view, self._export_format, self._export_size, self._export_button]
        )
        self._export_bar.add_class("xp-lab-export")

    def _on_format(self, _: Any = None) -> None:
        table = self._export_format.value in TABLE_FORMATS
        self._export_size.layout.display = "none" if table else ""

    def _refresh_export_views(self) -> None:
        """Offer the views available now; keep the choice when it is still there."""
        views = list(self.views)
        current = self._export_view.value
        options = [("view on screen", "")] + [(v, v) for v in views]
        if [o[1] for o in self._export_view.options] != [o[1] for o in options]:
            self._export_view.options = options
            self._export_view.value = current if current in ("", *views) else ""

    def _export_path(self, view: str, fmt: str) -> Path:
        step = "" if self._shown_step is None else f"_step{self._shown_step}"
        safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in view)
        return self.out_dir / f"{self.kind}_{safe}{step}.{fmt}"

    def _export_clicked(self) -> None:
        def run() -> None:
            view = self._export_view.value or self._current_view()
            fmt = self._export_format.value
            size = self._export_size.value
            with self.busy(f"writing {fmt.upper()}…"):
                out = self.export(self._export_path(view, fmt), view, size=size)
            self._set_status(f"wrote {out}")

        self._guard(run, "export failed: ")

    def _resolve_view(self, view: str | None) -> str:
        name = self._current_view() if view is None else view
        views = self.views
        if name not in views:
            raise ValueError(f"unknown view {name!r}; this lab shows {list(views)}")
        return name
