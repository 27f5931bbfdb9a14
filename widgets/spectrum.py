"""SpectrumLab: frequency content of a learned function, of its layers and of its weights — on
one model, over a saved run, or live while a TrainingLab trains.

Four views: residual power per frequency × training step (a canvas heatmap fed float32
buffers, one column per snapshot), the output spectrum against the target's, per-layer
spectra (channel means) and the weight ESD of one matrix with its fitted power law; a
``dashboard`` view puts the four in one exportable figure. A view without data (no field
target, no recorded layers) is hidden and the status line says why. All numbers come from
:mod:`explorer.analysis.spectra`; figures from :mod:`widgets.figures.spectra`; the protocol
(source, follow, export, …) from :mod:`widgets._lab`.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import ipywidgets as ipw
import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch

from explorer.analysis import spectra as S
from explorer.models.hooks import capture, hook_names
from widgets._lab import Lab
from widgets._residual import ResidualRows
from widgets.canvas import HeatmapGrid
from widgets.figures import spectra as figs

__all__ = ["SpectrumLab"]

HEATMAP_BANDS = 32  # frequency rows on the canvas (bands when the spectrum is longer)
DEFAULT_ACTIVATIONS = ("layers.*.hook_post", "blocks.*.hook_out", "blocks.*.hook_resid_post")
VIEWS = ("residual_spectrum", "output_spectrum", "layer_spectra", "weight_esd", "dashboard")


def _field_spectrum(maps: np.ndarray) -> S.Spectrum:
    """Spectrum of grid maps (C, *shape) along their 1 or 2 grid axes."""
    return S.power_spectrum(maps) if maps.ndim == 2 else S.radial_power_spectrum(maps)


class SpectrumLab(Lab):
    """Live frequency panel.

    ``source``: ``(model, task)`` on a field task (signal or image: output vs target on the
    full grid, layer spectra, weight ESDs), a model alone (weight ESDs), a TrainingLab, a
    Recorder or a run directory (every snapshot adds a column to the frequency × step map;
    layer spectra come from recorded activations or from the model at that step). Data
    without a source: :meth:`set_target` and :meth:`update`. ``activations``: hook globs whose
    spectra the layer view shows; ``grid``: (h, w) of 2-D feature maps; ``log``: log scales.
    """

    kind = "spectrum"

    def __init__(
        self,
        *,
        source: Any = None,
        activations: Any = DEFAULT_ACTIVATIONS,
        grid: tuple[int, ...] | None = None,
        log: bool = True,
        out_dir: str | Path = "exports",
        min_interval_s: float = 0.25,
    ) -> None:
        super().__init__(out_dir=out_dir, min_interval_s=min_interval_s)
        self._grid = tuple(grid) if grid is not None else None
        self._patterns = [activations] if isinstance(activations, str) else list(activations)
        self.shape: tuple[int, ...] = ()
        self.target: np.ndarray | None = None  # (C, *shape) maps
        self.prediction: np.ndarray | None = None
        self._rows: ResidualRows | None = None
        self.layers: dict[str, S.Spectrum] = {}
        self.weights: dict[str, Any] = {}
        self._esd: tuple[np.ndarray, S.PowerLawFit | None] | None = None

        self.scale = ipw.ToggleButtons(
            options=["log", "linear"], value="log" if log else "linear", description="Scale"
        )
        self.scale.add_class("xp-spectrum-scale")
        self.layer = ipw.Dropdown(
            options=[], description="Weights", layout=ipw.Layout(width="360px")
        )
        self.heatmap = HeatmapGrid(
            tile_px=300, tile_height=220, aspect="auto", columns=1, colorscale="viridis",
            x_title="step", y_title="frequency", colorbar_title="log₁₀ residual power",
        )  # fmt: skip
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
        self._boxes = {
            "residual_spectrum": ipw.Box([self.heatmap]),
            "output_spectrum": ipw.Box([self.current]),
            "layer_spectra": ipw.Box([self.layer_fig]),
            "weight_esd": ipw.Box([self.esd_fig]),
        }
        self.scale.observe(lambda _: self._guard(self._draw), "value")
        self.layer.observe(lambda _: self._guard(self._on_layer), "value")
        wrap = ipw.Layout(flex_flow="row wrap", align_items="flex-start")
        self._set_body(
            ipw.HBox([self.scale, self.layer], layout=ipw.Layout(flex_flow="row wrap")),
            ipw.HBox(list(self._boxes.values()), layout=wrap),
        )
        self._draw()
        if source is not None:
            self.follow(source)

    @property
    def _frequency_title(self) -> str:
        """A signal's frequencies are cycles per sample; an image's (radial 2-D spectrum) per pixel."""
        return f"frequency (cycles per {'pixel' if len(self.shape) == 2 else 'sample'})"

    # ------------------------------------------------------------------ data in
    def set_target(self, values: Any, shape: tuple[int, ...]) -> None:
        """The target on the grid: values (N, C) in raster order over ``shape`` (1-D or 2-D);
        starts a new residual history."""
        shape = tuple(int(s) for s in shape)
        if len(shape) not in (1, 2):
            raise ValueError(f"the grid must be 1-D or 2-D, got shape {shape}")
        with self._lock:
            self.shape = shape
            self.target = S.grid_maps(values, shape)
            self._grid = self._grid or shape
            self._rows = ResidualRows(values, shape)

    def update(
        self,
        prediction: Any = None,
        *,
        step: int | None = None,
        activations: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> None:
        """New observations without a source: ``prediction`` (N, C) on the target grid (a
        column of the residual map at ``step``; the same step again replaces it), a capture of
        ``activations``, ``params`` (name → tensor) for the weight ESD."""
        with self._lock:
            self._take(prediction, step, activations, params)
            self._draw()

    def _take(
        self,
        prediction: Any,
        step: int | None,
        activations: Mapping[str, Any] | None,
        params: Mapping[str, Any] | None,
    ) -> None:
        if prediction is not None and self.target is not None and self._rows is not None:
            self.prediction = S.grid_maps(prediction, self.shape)
            if step is None:
                steps, _ = self._rows.until()
                step = steps[-1] + 1 if steps else 0
            self._rows.add({int(step): prediction})
        if activations:
            grid = self._grid if self._grid and len(self._grid) == 2 else None
            self.layers = S.layer_spectra(dict(activations), grid=grid)
        if params:
            self.weights = S.weight_matrices(dict(params))
            self._esd = None
            names = list(self.weights)
            if list(self.layer.options) != names:
                current = self.layer.value
                self.layer.options = names
                self.layer.value = current if current in names else (names[-1] if names else None)

    def _on_follow(self, source: Any) -> None:
        self.target, self.prediction, self._rows = None, None, None
        self.layers, self.weights, self._esd = {}, {}, None
        probe = getattr(source, "probe", None)
        if probe is not None and probe.kind == "field" and probe.target is not None:
            self.set_target(probe.target, probe.shape)

    def _show_snapshot(self, snap: Any) -> None:
        src = self._source
        self._shown_step = int(snap.step)
        if self._rows is not None:
            self._rows.from_source(src, snap.step)
        if snap.predictions is not None and self.target is not None:
            self.prediction = S.grid_maps(snap.predictions, self.shape)
        activations = dict(snap.activations) or self._activations_at(snap.step)
        self._take(None, snap.step, activations, snap.params or None)
        self._draw()

    def _activations_at(self, step: int) -> dict[str, Any] | None:
        """The activation globs captured on the probe inputs by the model at ``step``."""
        probe = getattr(self._source, "probe", None)
        if probe is None or probe.kind != "field" or not self._patterns:
            return None
        model = self._source.model_at(step)
        names = hook_names(model)
        patterns = [p for p in self._patterns if fnmatch.filter(names, p)]
        if not patterns:
            return None
        with torch.no_grad():
            x = probe.inputs.to(next(model.parameters()).device)
            return dict(capture(model, x, patterns))

    # ------------------------------------------------------------------ state
    @property
    def steps(self) -> list[int]:
        """Steps with a column in the residual map."""
        return [] if self._rows is None else self._rows.until()[0]

    @property
    def residual(self) -> S.Spectrum | None:
        """Residual power history up to the shown step: power (steps, k) at ``freqs``."""
        return None if self._rows is None else self._rows.until(self._shown_step)[1]

    def _residual_steps(self) -> list[int]:
        """The steps of :attr:`residual`'s rows."""
        return [] if self._rows is None else self._rows.until(self._shown_step)[0]

    @property
    def log_scale(self) -> bool:
        return self.scale.value == "log"

    @property
    def selection(self) -> dict[str, Any]:
        return {"weights": self.layer.value, "scale": self.scale.value, "step": self._shown_step}

    @property
    def panels(self) -> dict[str, ipw.Widget]:
        widgets = {"residual_spectrum": self.heatmap, "output_spectrum": self.current,
                   "layer_spectra": self.layer_fig, "weight_esd": self.esd_fig}  # fmt: skip
        return {v: widgets[v] for v in self.views if v in widgets}

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

    def _on_layer(self) -> None:
        self._esd = None
        self._draw()

    def _current_spectra(self) -> dict[str, S.Spectrum]:
        out = {}
        if self.prediction is not None:
            out["prediction"] = _field_spectrum(self.prediction)
        if self.target is not None:
            out["target"] = _field_spectrum(self.target)
        return out

    # ------------------------------------------------------------------ drawing
    def _available_views(self) -> list[str]:
        have = {
            "residual_spectrum": self.residual is not None,
            "output_spectrum": self.target is not None,
            "layer_spectra": bool(self.layers),
            "weight_esd": bool(self.weights),
        }
        views = [v for v, ok in have.items() if ok]
        return [*views, "dashboard"] if views else []

    def _current_view(self) -> str:
        views = self.views
        return "dashboard" if len(views) > 2 else views[0] if views else "dashboard"

    def _draw(self) -> None:
        """Every panel with data; the others hidden, and the status line says why."""
        views = set(self.views)
        for view, box in self._boxes.items():
            box.layout.display = "" if view in views else "none"
        self.layer.layout.display = "" if "weight_esd" in views else "none"
        axis = "log" if self.log_scale else "linear"
        res = self.residual
        if res is not None:
            steps = self._residual_steps()
            shown = S.band_power(res, HEATMAP_BANDS) if res.freqs.size > HEATMAP_BANDS else res
            z = figs.log_floor(shown.power.T[::-1], self.log_scale)  # rows: high frequency on top
            self.heatmap.show(
                z, [f"residual power, steps {steps[0]}–{steps[-1]}"],
                extent=[float(steps[0]), float(steps[-1]), float(shown.freqs[0]), float(shown.freqs[-1])],
                colorbar_title="log₁₀ residual power" if self.log_scale else "residual power",
                caption=f"which frequencies are still wrong: {len(steps)} snapshots",
                y_title=self._frequency_title,
            )  # fmt: skip
        with self.current.batch_update():
            self.current.data = ()
            self.current.add_traces(
                figs.spectrum_traces(self._current_spectra(), dashed=("target",))
            )
            self.current.layout.yaxis.type = axis
            self.current.layout.xaxis.title.text = self._frequency_title
        with self.layer_fig.batch_update():
            self.layer_fig.data = ()
            self.layer_fig.add_traces(figs.spectrum_traces(self.layers))
            self.layer_fig.layout.yaxis.type = axis
            self.layer_fig.layout.xaxis.title.text = self._frequency_title
        esd = self._weight_esd()
        with self.esd_fig.batch_update():
            self.esd_fig.data = ()
            if esd is not None:
                self.esd_fig.add_traces(figs.esd_traces(*esd))
                self.esd_fig.layout.title.text = f"ESD of {self.layer.value}"
            self.esd_fig.layout.xaxis.type = axis
            self.esd_fig.layout.yaxis.type = axis
        self._set_status(self._describe(views))
        self._refresh_export_views()

    def _describe(self, views: set[str]) -> str:
        parts = []
        res = self.residual
        if res is not None:
            parts.append(
                f"step {self._residual_steps()[-1]}: relative error {res.power[-1].sum():.3g}"
            )
            share = float(S.high_frequency_share(S.Spectrum(res.freqs, res.power[-1]), 0.5))
            if np.isfinite(share):
                parts.append(f"{100 * share:.0f}% of it above half Nyquist")
        if self._esd is not None and self._esd[1] is not None:
            parts.append(f"{self.layer.value}: α = {self._esd[1].alpha:.2f}")
        if views and "output_spectrum" not in views:
            parts.append(
                "no target on a grid: output and residual spectra need a signal or image task"
            )
        return " · ".join(parts) or "waiting for data: a source, set_target()/update()"

    # ------------------------------------------------------------------ protocol
    def _figure(self, view: str) -> go.Figure:
        log = self.log_scale
        if view == "residual_spectrum":
            res = self.residual
            assert res is not None
            return figs.residual_history_figure(self._residual_steps(), res, log=log)
        xlabel = self._frequency_title
        if view == "output_spectrum":
            return figs.spectrum_figure(self._current_spectra(), log=log, dashed=("target",),
                                        title="output spectrum vs target", xlabel=xlabel)  # fmt: skip
        if view == "layer_spectra":
            return figs.spectrum_figure(
                self.layers, log=log, title="per-layer spectra (channel mean)", xlabel=xlabel
            )
        esd = self._weight_esd()
        if view == "weight_esd":
            assert esd is not None
            fig = figs.esd_figure(*esd)
            fig.update_layout(title=f"ESD of {self.layer.value}")
            return fig
        res = self.residual
        return figs.dashboard_figure(
            steps=self._residual_steps(), residual=res,
            current=self._current_spectra(), layers=dict(self.layers),
            eigenvalues=None if esd is None else esd[0], fit=None if esd is None else esd[1],
            esd_title=f"ESD {self.layer.value or ''}", log=log,
        )  # fmt: skip

    def _frame(self, view: str) -> pd.DataFrame:
        def spectra_rows(spectra: Mapping[str, S.Spectrum], key: str) -> pd.DataFrame:
            return pd.DataFrame(
                [{key: name, "frequency": float(f), "power": float(p)}
                 for name, spec in spectra.items()
                 for f, p in zip(spec.freqs, spec.power if spec.power.ndim == 1 else spec.power.mean(0))],
                columns=[key, "frequency", "power"],
            )  # fmt: skip

        parts: dict[str, pd.DataFrame] = {}
        if view in ("residual_spectrum", "dashboard") and self.residual is not None:
            res = self.residual
            s, f = np.meshgrid(self._residual_steps(), res.freqs, indexing="ij")
            parts["residual_spectrum"] = pd.DataFrame(
                {"step": s.ravel(), "frequency": f.ravel(), "power": res.power.ravel()}
            )
        if view in ("output_spectrum", "dashboard"):
            parts["output_spectrum"] = spectra_rows(self._current_spectra(), "series")
        if view in ("layer_spectra", "dashboard"):
            parts["layer_spectra"] = spectra_rows(self.layers, "layer")
        esd = self._weight_esd()
        if view in ("weight_esd", "dashboard") and esd is not None:
            parts["weight_esd"] = pd.DataFrame({"layer": self.layer.value, "eigenvalue": esd[0]})
        if view != "dashboard":
            return parts[view]
        return pd.concat([p.assign(panel=k) for k, p in parts.items()], ignore_index=True)
