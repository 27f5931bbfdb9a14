"""SweepLab: follow a sweep's results directory live — progress, the metric against a
hyper-parameter with the spread over seeds, similarity and disagreement across trials — and
open any trial in the other labs.

The source is a results directory written by :func:`explorer.train.sweep.run_sweep` (locally,
on a Ray cluster, by this kernel or another process): the lab polls it, so trials appear and
their values move as they train. The step slider shows every trial's metric at an earlier
training step. Click a trial's marker (or pick it in the trial menu) and press Open to look at
its run directory in another lab. Every number comes from :mod:`explorer.train.sweep`; figures
from :mod:`widgets.figures.sweep`.
"""

from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Any, ClassVar

import ipywidgets as W
import pandas as pd
import plotly.graph_objects as go

from explorer.analysis.sweep import config_cka, seed_cka, seed_disagreement
from explorer.train.sweep import SweepSource
from explorer.train.sweep.progress import SweepProgress
from widgets._lab import Lab
from widgets.figures import sweep as figs

__all__ = ["SweepLab"]

VIEWS = ("metric", "seed similarity", "config similarity", "disagreement")
# Labs a trial's run directory opens in: name → (module, class)
OPEN_IN = {
    "training": ("widgets.training", "TrainingLab"),
    "spectrum": ("widgets.spectrum", "SpectrumLab"),
    "geometry": ("widgets.geometry", "GeometryLab"),
    "alignment": ("widgets.alignment", "AlignmentLab"),
    "attention": ("widgets.attention", "AttentionLab"),
}


class SweepLab(Lab):
    """Follow the sweep in ``source`` (a results directory, or a
    :class:`~explorer.train.sweep.SweepSource`).

    ``x``: the hyper-parameter on the x axis (default: the first swept name), ``group``: a
    second one drawn as one line per value (default: none), ``metric``: default the sweep's.
    ``poll_s``: how often the directory is looked at. Views: ``metric`` (value against ``x``,
    mean ± std over seeds, one clickable marker per trial), ``seed similarity`` and ``config
    similarity`` (linear CKA of the final representations), ``disagreement`` (error against
    seed disagreement per test example). :meth:`open_trial` shows a trial in another lab.
    """

    kind: ClassVar[str] = "sweep"

    def __init__(
        self,
        source: Any = None,
        *,
        x: str | None = None,
        group: str | None = None,
        metric: str | None = None,
        poll_s: float = 1.0,
        out_dir: str | Path = "exports",
        min_interval_s: float = 0.5,
    ) -> None:
        super().__init__(out_dir=out_dir, min_interval_s=min_interval_s)
        self._poll_s = float(poll_s)
        self._want = {"x": x, "group": group, "metric": metric}
        self._selected: str | None = None
        self._opened: Lab | None = None
        self._analysis: dict[str, tuple[tuple[str, ...], pd.DataFrame]] = {}
        self._snap: Any = None
        self._build()
        if source is not None:
            self.follow(source)

    # ================================================================== protocol
    def follow(self, source: Any) -> SweepLab:
        """Follow the sweep in ``source`` (a results directory or a SweepSource)."""
        if isinstance(source, (str, os.PathLike)):
            source = SweepSource(source, poll_s=self._poll_s)
        if not isinstance(source, SweepSource):
            raise TypeError(
                f"SweepLab follows a sweep's results directory, got {type(source).__name__}; "
                "open one trial in another lab with SweepLab.open_trial()"
            )
        super().follow(source)
        return self

    @property
    def selection(self) -> dict[str, Any]:
        return {
            "view": self._view.value,
            "x": self._x.value,
            "group": self._group.value or None,
            "metric": self._metric.value,
            "trial": self._selected,
            "step": self._shown_step,
        }

    @property
    def panels(self) -> dict[str, W.Widget]:
        return {self._view.value: self._figure_widget}

    @property
    def progress(self) -> SweepProgress | None:
        """Trial counts and the best value so far (None before the first look)."""
        return None if self._snap is None else self._snap.progress

    @property
    def controls(self) -> dict[str, W.Widget]:
        """The lab's own controls by name."""
        return {"view": self._view, "x": self._x, "group": self._group, "metric": self._metric,
                "trial": self._trial, "open_in": self._open_in, "open": self._open}  # fmt: skip

    def select_trial(self, trial_id: str | None) -> None:
        """Select a trial (as a click on its marker does); None clears the selection."""
        with self._lock:
            if trial_id is not None and trial_id not in self._trial_ids():
                raise ValueError(f"no trial {trial_id!r} in this sweep")
            self._selected = trial_id
            self._trial.value = trial_id
            self._redraw()

    def open_trial(self, trial_id: str | None = None, lab: str = "training", **kwargs: Any) -> Lab:
        """Open ``trial_id`` (default: the selected trial) in another lab — ``lab`` one of
        ``training`` (continue or replay it), ``spectrum``, ``geometry``, ``alignment``,
        ``attention`` — shown below the sweep; returns that lab."""
        tid = trial_id or self._selected
        if tid is None:
            raise ValueError("select a trial first (click its marker or pick it in the menu)")
        if lab not in OPEN_IN:
            raise ValueError(f"lab must be one of {sorted(OPEN_IN)}, got {lab!r}")
        module, name = OPEN_IN[lab]
        import importlib

        cls = getattr(importlib.import_module(module), name)
        path = self._source.result.store.run_path(tid)
        opened = cls.load(path, **kwargs) if lab == "training" else cls(source=path, **kwargs)
        with self._lock:
            if self._opened is not None:
                self._opened.close()
            self._opened = opened
            self._opened_box.children = [W.HTML(self._trial_label(tid, html_=True)), opened]
            self._set_status(f"opened trial {tid} in the {lab} lab")
        return opened

    # ================================================================== Lab hooks
    def _available_views(self) -> list[str]:
        if self._source is None:
            return ["metric"]
        return list(VIEWS)

    def _current_view(self) -> str:
        return str(self._view.value)

    def _on_follow(self, source: Any) -> None:
        result = source.result
        swept = result.swept or ["seed"]
        self._analysis.clear()
        with self.hold_trait_notifications():
            self._x.options = swept
            self._x.value = self._want["x"] if self._want["x"] in swept else swept[0]
            self._group.options = [("none", "")] + [(s, s) for s in result.swept]
            self._group.value = self._want["group"] if self._want["group"] in swept else ""
            metrics = sorted(set(result.frame()["metric"])) or [result.metric]
            self._metric.options = (
                metrics if result.metric in metrics else [result.metric, *metrics]
            )
            self._metric.value = self._want["metric"] or result.metric
        self._refresh_export_views()

    def _show_snapshot(self, snap: Any) -> None:
        self._snap = snap
        self._redraw()

    def _figure(self, view: str) -> go.Figure:
        if view == "metric":
            return figs.metric_figure(
                self._metric_frame(), self._x.value, metric=self._metric.value,
                group=self._group.value or None, selected=self._selected,
                title=f"{self._metric.value} at step {self._step()} (mean ± std over seeds)",
            )  # fmt: skip
        frame = self._frame(view)
        if view == "seed similarity":
            return figs.seed_cka_figure(frame)
        if view == "config similarity":
            return figs.config_cka_figure(frame)
        return figs.disagreement_figure(frame)

    def _frame(self, view: str) -> pd.DataFrame:
        if view == "metric":
            return self._metric_frame()
        analysis = {"seed similarity": seed_cka, "config similarity": config_cka,
                    "disagreement": seed_disagreement}[view]  # fmt: skip
        result = self._source.result
        finished = tuple(result.finished())
        cached = self._analysis.get(view)
        if cached is None or cached[0] != finished:
            with self.busy(f"computing {view} over {len(finished)} trials…"):
                cached = (finished, analysis(result))
            self._analysis[view] = cached
        return cached[1]

    # ================================================================== drawing
    def _metric_frame(self) -> pd.DataFrame:
        if self._source is None:
            return pd.DataFrame(columns=["trial_id", "seed", "state", "step", "value"])
        return self._source.at(self._step(), metric=self._metric.value).frame

    def _step(self) -> int:
        """The step on view: the snapshot being drawn, else the slider's, else the last."""
        if self._snap is not None:
            return int(self._snap.step)
        if self._shown_step is not None:
            return self._shown_step
        steps = self._source.steps
        return steps[-1] if steps else 0

    def _redraw(self) -> None:
        self._refresh_progress()
        self._refresh_trials()
        if self._source is None:
            return
        if not self._guard(self._draw_view, "", clear=False):
            return
        self._set_status(self._progress_text())

    def _draw_view(self) -> None:
        self._axes_row.layout.display = "" if self._view.value == "metric" else "none"
        # a new widget per drawing: the views differ in subplots, annotations and colour
        # axes, and a FigureWidget keeps layout keys a new figure does not set
        w = go.FigureWidget(self._figure(self._view.value))
        w.add_class(f"xp-{self.kind}-figure")
        self._figure_widget = w
        self._figure_box.children = [w]
        self._bind_clicks()

    def _bind_clicks(self) -> None:
        for trace in self._figure_widget.data:
            if trace.name and trace.name.endswith(": trials"):
                trace.on_click(self._on_point_click)

    def _on_point_click(self, _trace: Any, points: Any, _state: Any) -> None:
        if not points.point_inds:
            return
        # the clicked trace by its index (not the callback's trace argument: plotly has passed
        # the wrong one for figures of several traces)
        trace = self._figure_widget.data[points.trace_index]
        if trace.customdata is None:
            return
        tid = str(trace.customdata[points.point_inds[0]][0])
        self._guard(lambda: self.select_trial(tid))

    def _refresh_progress(self) -> None:
        p = self.progress
        if p is None:
            return
        self._bar.max = max(p.total, 1)
        self._bar.value = p.finished + p.failed
        self._bar.bar_style = "danger" if p.failed else ("success" if p.pending == 0 and
                                                         p.running == 0 else "info")  # fmt: skip
        self._progress_line.value = html.escape(p.describe())

    def _progress_text(self) -> str:
        p = self.progress
        return "" if p is None else p.describe()

    def _trial_ids(self) -> list[str]:
        return [] if self._source is None else list(self._source.result.trials()["trial_id"])

    def _trial_label(self, trial_id: str, *, html_: bool = False) -> str:
        table = self._source.result.trials().set_index("trial_id")
        row = table.loc[trial_id]
        parts = [f"{k}={row[k]:g}" if isinstance(row[k], float) else f"{k}={row[k]}"
                 for k in self._source.result.swept]  # fmt: skip
        text = ", ".join([*parts, f"seed {row['seed']}", str(row["state"])])
        return f"<b>{html.escape(text)}</b> ({html.escape(trial_id)})" if html_ else text

    def _refresh_trials(self) -> None:
        if self._source is None:
            return
        options = [("—", None)] + [(self._trial_label(t), t) for t in self._trial_ids()]
        if [o[1] for o in self._trial.options] != [o[1] for o in options] or any(
            a[0] != b[0] for a, b in zip(self._trial.options, options)
        ):
            self._syncing = True
            try:
                self._trial.options = options
                self._trial.value = self._selected
            finally:
                self._syncing = False
        self._open.disabled = self._selected is None

    # ================================================================== widgets
    def _build(self) -> None:
        k = self.kind
        wide = W.Layout(width="240px")
        self._syncing = False
        self._view = W.ToggleButtons(options=list(VIEWS), value="metric",
                                     style={"button_width": "130px"})  # fmt: skip
        self._x = W.Dropdown(options=[], description="x", layout=wide)
        self._group = W.Dropdown(options=[("none", "")], value="", description="lines",
                                 layout=wide)  # fmt: skip
        self._metric = W.Dropdown(options=[], description="metric", layout=wide)
        self._trial = W.Dropdown(options=[("—", None)], value=None, description="trial",
                                 layout=W.Layout(width="420px"))  # fmt: skip
        self._open_in = W.Dropdown(options=list(OPEN_IN), value="training",
                                   description="open in", layout=W.Layout(width="200px"))  # fmt: skip
        self._open = W.Button(description="Open", icon="external-link", disabled=True,
                              tooltip="open the selected trial in the chosen lab",
                              layout=W.Layout(width="90px"))  # fmt: skip
        self._bar = W.IntProgress(value=0, min=0, max=1, description="trials",
                                  layout=W.Layout(width="320px"))  # fmt: skip
        self._progress_line = W.HTML()
        self._figure_widget = go.FigureWidget()
        self._figure_box = W.Box([self._figure_widget])
        self._opened_box = W.VBox()
        for name, w in (("view", self._view), ("x", self._x), ("group", self._group),
                        ("metric", self._metric), ("trial", self._trial),
                        ("open-in", self._open_in), ("open", self._open),
                        ("progress", self._bar), ("progress-line", self._progress_line),
                        ("figure", self._figure_widget), ("opened", self._opened_box)):  # fmt: skip
            w.add_class(f"xp-{k}-{name}")
        for w in (self._view, self._x, self._group, self._metric):
            w.observe(lambda _: self._guard(self._on_control), names="value")
        self._trial.observe(self._on_trial, names="value")
        self._open.on_click(lambda _: self._guard(
            lambda: self.open_trial(lab=self._open_in.value), "open failed: "))  # fmt: skip

        def row() -> W.Layout:  # one Layout per box: hiding one row must not hide the others
            return W.Layout(flex_flow="row wrap", align_items="center")

        # what the metric view draws; the analysis views have no x, lines or metric
        self._axes_row = W.HBox([self._x, self._group, self._metric], layout=row())
        self._set_body(
            W.HBox([self._bar, self._progress_line], layout=row()),
            self._view,
            self._axes_row,
            self._figure_box,
            W.HBox([self._trial, self._open_in, self._open], layout=row()),
        )
        # an opened trial's lab goes below the sweep's own step slider, export bar and status
        self.children = [*self.children, self._opened_box]

    def _on_control(self) -> None:
        with self._lock:
            self._want.update(x=self._x.value, group=self._group.value or None,
                              metric=self._metric.value)  # fmt: skip
            self._redraw()

    def _on_trial(self, change: dict[str, Any]) -> None:
        if self._syncing or change["new"] == self._selected:
            return
        self._guard(lambda: self.select_trial(change["new"]))

    def _on_close(self) -> None:
        if self._opened is not None:
            self._opened.close()
            self._opened = None
