"""Pure figure builders for the frequency lens: analysis result → plotly Figure.

Log scales: spectra use log-y (and optionally log-x, DC left out since log 0 is undefined);
ESDs use log-binned densities on log-log axes, the usual way to see a power-law tail.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from explorer.analysis.spectra import FourierSweep, PowerLawFit, Spectrum
from widgets.theme import COLORWAY, SEQUENTIAL, apply_theme, log_axes

__all__ = [
    "dashboard_figure",
    "esd_figure",
    "esd_traces",
    "log_floor",
    "residual_history_figure",
    "spectrum_figure",
    "spectrum_traces",
    "sweep_figure",
    "zp_figure",
]

FLOOR = 1e-12  # power below this shows as the floor on log scales


def log_floor(values: np.ndarray, log: bool) -> np.ndarray:
    """log10(max(values, FLOOR)) when ``log``, else the values: the display transform."""
    v = np.asarray(values, dtype=np.float64)
    return np.log10(np.maximum(v, FLOOR)) if log else v


def _xy(spec: Spectrum, row: int | None, log_x: bool) -> tuple[np.ndarray, np.ndarray]:
    power = spec.power if row is None else spec.power[row]
    power = power if power.ndim == 1 else power.mean(0)
    keep = spec.freqs > 0 if log_x else np.ones(spec.freqs.size, bool)
    return spec.freqs[keep], np.maximum(power[keep], FLOOR)


def spectrum_traces(
    spectra: Mapping[str, Spectrum], *, log_x: bool = False, dashed: Sequence[str] = ()
) -> list[go.Scatter]:
    """One line per named spectrum (multi-row power is averaged over rows, e.g. channels)."""
    traces = []
    for i, (name, spec) in enumerate(spectra.items()):
        x, y = _xy(spec, None, log_x)
        traces.append(
            go.Scatter(
                x=x,
                y=y,
                name=name,
                mode="lines",
                line=dict(
                    color=COLORWAY[i % len(COLORWAY)], dash="dash" if name in dashed else "solid"
                ),
            )
        )
    return traces


def spectrum_figure(
    spectra: Mapping[str, Spectrum],
    *,
    log: bool = True,
    log_x: bool = False,
    title: str = "Power spectrum",
    dashed: Sequence[str] = (),
    xlabel: str = "frequency (cycles per sample)",
) -> go.Figure:
    """Lines of power vs frequency, e.g. ``{"prediction": s1, "target": s2}`` (may be empty)."""
    kind = next(iter(spectra.values())).kind if spectra else "power"
    fig = go.Figure(spectrum_traces(spectra, log_x=log_x, dashed=dashed))
    fig.update_layout(title=title, xaxis_title=xlabel, yaxis_title=kind, height=340)
    log_axes(fig, y=log, x=log_x)
    return apply_theme(fig)


def residual_history_figure(
    steps: Sequence[int], residual: Spectrum, *, log: bool = True, title: str | None = None
) -> go.Figure:
    """Heatmap of residual power: frequency (y) × training step (x); ``residual.power`` is
    (steps, k) from :func:`explorer.analysis.spectra.residual_spectrum`."""
    power = np.asarray(residual.power)
    if power.ndim != 2 or power.shape[0] != len(steps):
        raise ValueError(
            f"residual.power must be (len(steps), k), got {power.shape} for {len(steps)} steps"
        )
    z = log_floor(power.T, log)
    fig = go.Figure(
        go.Heatmap(
            x=list(steps),
            y=residual.freqs,
            z=z,
            colorscale=SEQUENTIAL,
            colorbar=dict(title=dict(text="log₁₀ residual power" if log else "residual power")),
        )
    )
    fig.update_layout(
        title=title or "Residual power per frequency over training",
        xaxis_title="step", yaxis_title="frequency", height=340,
    )  # fmt: skip
    return apply_theme(fig)


def _log_bins(values: np.ndarray, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    v = values[values > 0]
    edges = np.geomspace(v.min(), v.max() * (1 + 1e-9), n_bins + 1)
    counts, _ = np.histogram(v, edges)
    density = counts / (values.size * np.diff(edges))
    return np.sqrt(edges[:-1] * edges[1:]), density


def esd_traces(
    eigenvalues: np.ndarray, fit: PowerLawFit | None = None, *, n_bins: int = 40
) -> list[go.Scatter | go.Bar]:
    """Log-binned density of the ESD, and the fitted power law on the tail if given."""
    lam = np.asarray(eigenvalues, dtype=np.float64)
    centers, density = _log_bins(lam, n_bins)
    keep = density > 0
    traces: list[go.Scatter | go.Bar] = [
        go.Scatter(
            x=centers[keep],
            y=density[keep],
            mode="markers",
            name="ESD",
            marker=dict(color=COLORWAY[0], size=6),
        )
    ]
    if fit is not None and np.isfinite(fit.alpha):
        x = np.geomspace(fit.xmin, lam.max(), 50)
        traces.append(
            go.Scatter(
                x=x,
                y=fit.pdf(x),
                mode="lines",
                name=f"power law α={fit.alpha:.2f} (D={fit.ks_distance:.3f})",
                line=dict(color=COLORWAY[1], width=2),
            )
        )
    return traces


def esd_figure(
    eigenvalues: np.ndarray | None,
    fit: PowerLawFit | None = None,
    *,
    log: bool = True,
    title: str = "Empirical spectral density of WᵀW",
) -> go.Figure:
    """ESD (log-binned density) with the fitted power-law tail (empty without eigenvalues)."""
    fig = go.Figure(esd_traces(eigenvalues, fit) if eigenvalues is not None else [])
    if fit is not None and np.isfinite(fit.xmin):
        fig.add_vline(x=fit.xmin, line=dict(color="#888", dash="dot"))
    fig.update_layout(title=title, xaxis_title="eigenvalue λ", yaxis_title="density", height=340)
    log_axes(fig, y=log, x=log)
    return apply_theme(fig)


def sweep_figure(sweep: FourierSweep) -> go.Figure:
    """FreSh: initial-spectrum distance vs held-out PSNR, one point per σ (labelled)."""
    fig = go.Figure(
        go.Scatter(
            x=sweep.initial_distance,
            y=sweep.test_psnr,
            mode="markers+text+lines",
            text=[f"σ={s:g}" for s in sweep.sigmas],
            textposition="top center",
            marker=dict(
                size=9,
                color=np.log2(sweep.sigmas),
                colorscale=SEQUENTIAL,
                colorbar=dict(title="log2 σ"),
            ),
            line=dict(color="#bbb", width=1),
            name="σ sweep",
        )
    )
    fig.update_layout(
        title="Untrained spectrum distance vs held-out PSNR after training",
        xaxis_title="initial spectrum distance to target (W1)", yaxis_title="test PSNR (dB)",
        height=380,
    )  # fmt: skip
    return apply_theme(fig)


def zp_figure(
    spectra: Mapping[str, Spectrum], *, title: str = "Fourier power over Z_p"
) -> go.Figure:
    """Grouped bars of power per Z_p frequency k ≥ 1, one group per named spectrum."""
    fig = go.Figure(
        [
            go.Bar(
                x=s.freqs[1:],
                y=s.power[1:] / max(s.power[1:].sum(), FLOOR),
                name=name,
                marker_color=COLORWAY[i % len(COLORWAY)],
            )
            for i, (name, s) in enumerate(spectra.items())
        ]
    )
    fig.update_layout(
        title=title, barmode="group", xaxis_title="frequency k", yaxis_title="share of power",
        height=340,
    )  # fmt: skip
    return apply_theme(fig)


def dashboard_figure(
    *,
    steps: Sequence[int] | None = None,
    residual: Spectrum | None = None,
    current: Mapping[str, Spectrum] | None = None,
    layers: Mapping[str, Spectrum] | None = None,
    eigenvalues: np.ndarray | None = None,
    fit: PowerLawFit | None = None,
    esd_title: str = "weight ESD",
    log: bool = True,
) -> go.Figure:
    """The SpectrumLab view as one exportable figure: the residual heatmap across the top (its
    colour bar at the right of that row), the three line panels under it; empty panels stay
    blank."""
    fig = make_subplots(
        rows=2, cols=3, specs=[[{"colspan": 3}, None, None], [{}, {}, {}]],
        row_heights=[0.4, 0.6], horizontal_spacing=0.09, vertical_spacing=0.3,
        subplot_titles=("residual power over training", "model vs target", "per-layer spectra", esd_title),
    )  # fmt: skip
    if steps is not None and residual is not None and len(steps):
        fig.add_trace(
            go.Heatmap(x=list(steps), y=residual.freqs, z=log_floor(residual.power.T, log),
                       colorscale=SEQUENTIAL,
                       colorbar=dict(title=dict(text="log₁₀ power" if log else "power"),
                                     y=1, yanchor="top", len=0.35)),
            1, 1,
        )  # fmt: skip
    for trace in spectrum_traces(current or {}, dashed=("target",)):
        fig.add_trace(trace, 2, 1)
    for trace in spectrum_traces(layers or {}):
        trace.showlegend = False
        fig.add_trace(trace, 2, 2)
    if eigenvalues is not None:
        for trace in esd_traces(eigenvalues, fit):
            fig.add_trace(trace, 2, 3)
        log_axes(fig, y=log, x=log, row=2, col=3)
    for c in (1, 2):
        log_axes(fig, y=log, x=False, row=2, col=c)
    titles = {(1, 1): ("step", "frequency"), (2, 1): ("frequency", "power"),
              (2, 2): ("frequency", None), (2, 3): ("eigenvalue λ", "density")}  # fmt: skip
    for (r, c), (xt, yt) in titles.items():
        fig.update_xaxes(title_text=xt, row=r, col=c)
        fig.update_yaxes(title_text=yt, row=r, col=c)
    fig.update_layout(height=700, width=1000)
    return apply_theme(fig)
