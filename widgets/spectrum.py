"""SpectrumLab: frequency content of a learned function, of its layers and of its weights — on
one model, or live while a TrainingLab trains.

Four views: residual power per frequency × training step (a canvas heatmap fed float32 buffers,
one column per snapshot), the current output spectrum against the target's, per-layer spectra
(channel means) and the weight ESD of one matrix with its fitted power law. Log/linear toggle;
"Export" writes the whole view (``to_figure()``) to the path in the box. All numbers come from
:mod:`explorer.analysis.spectra`; figures from :mod:`widgets.figures.spectra`.
"""

from __future__ import annotations

import copy
import fnmatch
import html
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import ipywidgets as ipw
import numpy as np
import plotly.graph_objects as go

from explorer.analysis import spectra as S
from widgets.canvas import HeatmapGrid
from widgets.export import export
from widgets.figures import spectra as figs

__all__ = ["SpectrumLab"]

HEATMAP_BANDS = 32  # frequency rows on the canvas (bands when the spectrum is longer)
DEFAULT_ACTIVATIONS = ("layers.*.hook_post", "blocks.*.hook_out", "blocks.*.hook_resid_post")


def _field_spectrum(maps: np.ndarray) -> S.Spectrum:
    """Spectrum of grid maps (C, *shape) along their 1 or 2 grid axes."""
    return S.power_spectrum(maps) if maps.ndim == 2 else S.radial_power_spectrum(maps)


class SpectrumLab(ipw.VBox):
    """Live frequency panel.

    Standalone: ``SpectrumLab(model, task)`` looks at ``model`` on a field task (signal/image):
    output spectrum vs target on the full grid, spectra of the captured ``activations`` (hook
    globs) and the weight ESDs. ``SpectrumLab.from_capture(cache, grid=...)`` shows layer
    spectra of any capture. ``attach(training_lab)`` (or a Recorder) follows training: every
    snapshot adds a column to the frequency × step heatmap (snapshots need predictions on a
    field probe; recorded activations and parameters feed the other views).
    """

    def __init__(
        self,
        model: Any = None,
        task: Any = None,
        *,
        activations: Any = DEFAULT_ACTIVATIONS,
        grid: tuple[int, ...] | None = None,
        attach: Any = None,
        log: bool = True,
        min_interval: float = 0.25,
        export_path: str = "spectrum_lab.png",
    ) -> None:
        self._lock = threading.RLock()
        self._grid = tuple(grid) if grid is not None else None
        self._min_interval = float(min_interval)
        self._last_draw = 0.0
        self._timer: threading.Timer | None = None
        self.target: np.ndarray | None = None  # (C, *shape) maps
        self.prediction: np.ndarray | None = None
        self.steps: list[int] = []
        self._rows: list[np.ndarray] = []
        self._freqs: np.ndarray | None = None
        self.layers: dict[str, S.Spectrum] = {}
        self.weights: dict[str, Any] = {}
        self._esd: tuple[np.ndarray, S.PowerLawFit | None] | None = None
        self._patterns = [activations] if isinstance(activations, str) else list(activations)
        self._source: Any = None
        self._recorder: Any = None
        self._shadow: Any = None

        self.status = ipw.HTML("")
        self.status.add_class("xp-spectrum-status")
        self.scale = ipw.ToggleButtons(
            options=["log", "linear"], value="log" if log else "linear", description="Scale"
        )
        self.scale.add_class("xp-spectrum-scale")
        self.layer = ipw.Dropdown(
            options=[], description="Weights", layout=ipw.Layout(width="360px")
        )
        self.export_box = ipw.Text(
            value=export_path, description="File", layout=ipw.Layout(width="300px")
        )
        self.export_button = ipw.Button(
            description="Export", icon="download", tooltip="Export the view"
        )
        self.export_button.add_class("xp-spectrum-export")
        self.heatmap = HeatmapGrid(tile_px=260, columns=1, colorscale="viridis", show_labels=False)
        self.heatmap.add_class("xp-spectrum-heatmap")
        self.current = go.FigureWidget(figs.spectrum_figure({}, title="Current spectrum vs target"))
        self.layer_fig = go.FigureWidget(
            figs.spectrum_figure({}, title="Per-layer spectra (channel mean)")
        )
        self.esd_fig = go.FigureWidget(figs.esd_figure(None))
        for w, cls in (
            (self.current, "current"),
            (self.layer_fig, "layers"),
            (self.esd_fig, "esd"),
        ):
            w.layout.height, w.layout.width = 300, 460
            w.add_class(f"xp-spectrum-{cls}")

        self.scale.observe(lambda _: self._draw(force=True), "value")
        self.layer.observe(self._on_layer, "value")
        self.export_button.on_click(lambda _: self._export_clicked())
        controls = ipw.HBox([self.scale, self.layer, self.export_box, self.export_button])
        super().__init__(
            [
                self.status,
                controls,
                ipw.HBox([self.heatmap, self.current]),
                ipw.HBox([self.layer_fig, self.esd_fig]),
            ]
        )
        self.add_class("xp-spectrum-lab")
        if model is not None:
            self._look_at(model, task)
        if attach is not None:
            self.attach(attach)
        self._draw(force=True)

    # ------------------------------------------------------------------ sources
    @classmethod
    def from_capture(
        cls, cache: Mapping[str, Any], *, grid: tuple[int, ...] | None = None, **kw: Any
    ) -> SpectrumLab:
        """Layer spectra of a capture (name → activations); see ``feature_map_spectra``."""
        lab = cls(grid=grid, **kw)
        lab.update(activations=cache)
        return lab

    def _look_at(self, model: Any, task: Any) -> None:
        meta = getattr(task, "meta", None) or {}
        if task is None or not {"x_grid", "y_grid", "shape"} <= set(meta):
            self.update(params=dict(model.named_parameters()))
            return
        self.set_target(meta["y_grid"], meta["shape"])
        out, acts = self._observe(model, meta["x_grid"])
        self.update(out, activations=acts, params=dict(model.named_parameters()))

    def _observe(self, model: Any, inputs: Any) -> tuple[Any, dict[str, Any]]:
        """Run ``model`` on ``inputs`` capturing the hook points matching the activation globs."""
        import torch

        from explorer.models.hooks import capture, hook_names

        names = hook_names(model)
        patterns = [p for p in self._patterns if fnmatch.filter(names, p)]
        device = next(model.parameters()).device
        with torch.no_grad():
            x = torch.as_tensor(inputs, dtype=torch.float32, device=device)
            if not patterns:
                return model(x), {}
            cache = capture(model, x, patterns)
            return cache.output, dict(cache)

    def set_target(self, values: Any, shape: tuple[int, ...]) -> None:
        """The target on the grid: values (N, C) in raster order over ``shape`` (1-D or 2-D)."""
        shape = tuple(int(s) for s in shape)
        if len(shape) not in (1, 2):
            raise ValueError(f"the grid must be 1-D or 2-D, got shape {shape}")
        with self._lock:
            self.shape = shape
            self.target = S.grid_maps(values, shape)
            self._grid = self._grid or shape
            self.steps, self._rows, self._freqs = [], [], None

    def attach(self, source: Any) -> SpectrumLab:
        """Follow a TrainingLab (``.recorder`` + ``.subscribe``) or a Recorder (``.steps``/``.at``):
        existing snapshots are replayed, new ones arrive through ``subscribe``. Layer spectra
        come from the snapshot's activations or, when it recorded none, from a private copy of
        the model loaded with the snapshot's parameters."""
        recorder = getattr(source, "recorder", source)
        if not (hasattr(recorder, "steps") and hasattr(recorder, "at")):
            raise TypeError("attach() needs a TrainingLab or a Recorder (with .steps and .at)")
        self._source = source
        self._follow(recorder)
        for step in list(recorder.steps):
            self.on_snapshot(recorder.at(step), draw=False)
        if hasattr(recorder, "subscribe"):
            recorder.subscribe(self.on_snapshot)
        self._draw(force=True)
        return self

    def _follow(self, recorder: Any) -> None:
        """Start a fresh history for ``recorder`` (a new run after a reset or rebuild)."""
        self._recorder = recorder
        self._shadow = None
        probe = getattr(recorder, "probe", None)
        if probe is not None and probe.kind == "field" and probe.target is not None:
            self.set_target(probe.target, probe.shape)

    def on_snapshot(self, snap: Any, draw: bool = True) -> None:
        """Take one training snapshot (step, predictions, activations, params).

        Snapshots recorded since the last one shown (a lab notifies at its refresh rate) are
        added to the heatmap too; a latest snapshot older than the history means a new run."""
        recorder = getattr(self._source, "recorder", self._recorder)
        if recorder is not self._recorder:
            self._follow(recorder)
        live = recorder is not None and getattr(recorder, "latest", None) is snap
        if live and self.steps and snap.step < self.steps[-1]:
            self._follow(recorder)
        if live and self.steps and recorder is not None:
            for step in [s for s in list(recorder.steps) if self.steps[-1] < s < snap.step]:
                self.update(recorder.at(step).predictions, step=step, draw=False)
        acts = snap.activations or None
        if acts is None and snap.params and self._patterns:
            acts = self._snapshot_activations(snap.params)
        self.update(
            snap.predictions,
            step=snap.step,
            activations=acts,
            params=snap.params or None,
            draw=draw,
        )

    def _snapshot_activations(self, params: Mapping[str, Any]) -> dict[str, Any] | None:
        trainer = getattr(self._recorder, "trainer", None)
        probe = getattr(self._recorder, "probe", None)
        if trainer is None or probe is None or probe.kind != "field":
            return None
        if self._shadow is None:
            self._shadow = copy.deepcopy(trainer.model).cpu().eval()
        self._shadow.load_state_dict(dict(params), strict=False)
        return self._observe(self._shadow, probe.inputs)[1]

    # ------------------------------------------------------------------ state
    def update(
        self,
        prediction: Any = None,
        *,
        step: int | None = None,
        activations: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        draw: bool = True,
    ) -> None:
        """New observations: ``prediction`` (N, C) on the target grid, a capture of
        ``activations``, ``params`` (name → tensor) for the weight ESD. A snapshot scrubbed
        back to (a step already shown) replaces the views without adding a heatmap column."""
        with self._lock:
            if prediction is not None and self.target is not None:
                self.prediction = S.grid_maps(prediction, self.shape)
                res = S.residual_spectrum(self.prediction, self.target, ndim=len(self.shape))
                row = res.power.sum(0)  # channels add up to the relative squared error
                self._freqs = res.freqs
                if step is None:
                    step = self.steps[-1] + 1 if self.steps else 0
                if step in self.steps:
                    self._rows[self.steps.index(step)] = row
                elif not self.steps or step > self.steps[-1]:
                    self.steps.append(int(step))
                    self._rows.append(row)
            if activations:
                grid = self._grid if self._grid and len(self._grid) == 2 else None
                self.layers = S.layer_spectra(dict(activations), grid=grid)
            if params:
                self.weights = S.weight_matrices(dict(params))
                self._esd = None
        if params and list(self.layer.options) != list(self.weights):
            current = self.layer.value
            self.layer.options = list(self.weights)
            names = list(self.weights)
            self.layer.value = (
                current if current in self.weights else (names[-1] if names else None)
            )
        if draw:
            self._draw()

    @property
    def residual(self) -> S.Spectrum | None:
        """Residual power history: power (steps, k) at ``freqs`` (relative to the target)."""
        if not self._rows or self._freqs is None:
            return None
        return S.Spectrum(self._freqs, np.stack(self._rows), "residual")

    def _weight_esd(self) -> tuple[np.ndarray, S.PowerLawFit | None] | None:
        name = self.layer.value
        if name is None or name not in self.weights:
            return None
        if self._esd is None:
            lam = S.esd(self.weights[name])
            try:
                fit: S.PowerLawFit | None = S.fit_power_law(
                    lam, min_tail=min(10, int((lam > 0).sum()))
                )
            except ValueError:
                fit = None
            self._esd = (lam, fit)
        return self._esd

    def _on_layer(self, _: Any) -> None:
        self._esd = None
        self._draw(force=True)

    # ------------------------------------------------------------------ drawing
    @property
    def log(self) -> bool:
        return self.scale.value == "log"

    def _current_spectra(self) -> dict[str, S.Spectrum]:
        out = {}
        if self.prediction is not None:
            out["prediction"] = _field_spectrum(self.prediction)
        if self.target is not None:
            out["target"] = _field_spectrum(self.target)
        return out

    def _draw(self, force: bool = False) -> None:
        """Heatmap every time (a small binary buffer); plotly views at most every
        ``min_interval`` s, with a trailing redraw so the last snapshot is always shown."""
        self._draw_heatmap()
        now = time.monotonic()
        if not force and now - self._last_draw < self._min_interval:
            if self._timer is None:
                self._timer = threading.Timer(self._min_interval, self._flush)
                self._timer.daemon = True
                self._timer.start()
            return
        self._last_draw = now
        self._draw_figures()

    def _flush(self) -> None:
        self._timer = None
        self._last_draw = time.monotonic()
        self._draw_figures()

    def _draw_heatmap(self) -> None:
        res = self.residual
        if res is None:
            self.heatmap.show(
                np.zeros((1, 1)), ["no target yet"], caption="residual power: frequency × step"
            )
            return
        if res.freqs.size > HEATMAP_BANDS:  # canvas cells are square: coarsen tall spectra
            res = S.band_power(res, HEATMAP_BANDS)
        z = figs.log_floor(res.power.T[::-1], self.log)  # rows: high frequency on top
        self.heatmap.show(
            z, [f"residual power ({'log10' if self.log else 'linear'}), step {self.steps[-1]}"],
            row_labels=[f"{f:.3g}" for f in res.freqs[::-1]],
            col_labels=[str(s) for s in self.steps],
            caption=f"frequency (rows, high on top) × step (columns): {len(self.steps)} snapshots",
        )  # fmt: skip

    def _draw_figures(self) -> None:
        with self._lock:
            current = self._current_spectra()
            layers = dict(self.layers)
            esd = self._weight_esd()
        axis = "log" if self.log else "linear"
        with self.current.batch_update():
            self.current.data = ()
            self.current.add_traces(figs.spectrum_traces(current, dashed=("target",)))
            self.current.layout.yaxis.type = axis
        with self.layer_fig.batch_update():
            self.layer_fig.data = ()
            self.layer_fig.add_traces(figs.spectrum_traces(layers))
            self.layer_fig.layout.yaxis.type = axis
        with self.esd_fig.batch_update():
            self.esd_fig.data = ()
            if esd is not None:
                self.esd_fig.add_traces(figs.esd_traces(*esd))
                self.esd_fig.layout.title.text = f"ESD of {self.layer.value}"
            self.esd_fig.layout.xaxis.type = axis
            self.esd_fig.layout.yaxis.type = axis
        self.status.value = html.escape(self._status_text())

    def _status_text(self) -> str:
        parts = []
        if self.steps:
            res = self.residual
            assert res is not None
            parts.append(f"step {self.steps[-1]}: relative error {res.power[-1].sum():.3g}")
            share = float(S.high_frequency_share(S.Spectrum(res.freqs, res.power[-1]), 0.5))
            if np.isfinite(share):
                parts.append(f"{100 * share:.0f}% of it above half Nyquist")
        if self._esd is not None and self._esd[1] is not None:
            parts.append(f"{self.layer.value}: α = {self._esd[1].alpha:.2f}")
        return " · ".join(parts) or "waiting for data"

    # ------------------------------------------------------------------ export
    def to_figure(self) -> go.Figure:
        """The current view as one static figure (for :func:`widgets.export`)."""
        with self._lock:
            esd = self._weight_esd()
            return figs.dashboard_figure(
                steps=list(self.steps), residual=self.residual, current=self._current_spectra(),
                layers=dict(self.layers), eigenvalues=None if esd is None else esd[0],
                fit=None if esd is None else esd[1], esd_title=f"ESD {self.layer.value or ''}",
                log=self.log,
            )  # fmt: skip

    def export(self, path: str | Path, **kw: Any) -> Path:
        """Write the view to ``path`` (.png, .svg, .pdf or .html)."""
        return export(self, path, **kw)

    def _export_clicked(self) -> None:
        try:
            out = self.export(self.export_box.value)
            self.status.value = html.escape(f"exported {out}")
        except Exception as err:  # shown to the user, never kills the kernel
            self.status.value = html.escape(f"export failed: {err}")
