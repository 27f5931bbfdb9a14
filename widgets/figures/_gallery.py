"""Every public figure builder on small real results: the cases the figure tests walk, and a
contact sheet for looking at them all at screen and print sizes.

``python -m widgets.figures._gallery artifacts/figures`` writes one PNG per builder and size
(``screen``, ``column``, ``two-column``) and a contact sheet per size.

Inputs are real: a small MLP trained a few dozen steps on moons and on a 1-D signal, explorer's
analysis functions (spectra, ESD and power-law fit, head statistics, geometry profile, CKA,
Procrustes projection) on those models or on small random data. Tokens repeat (``the``, ``a``),
and one holds a NUL byte and ``<script>``, so every token axis is checked on the hard case.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import sys
import typing
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

__all__ = ["TOKENS", "builders", "cases", "contact_sheet"]

TOKENS = ["the", "cat", "saw", "the", "dog", "<script>", "a\x00b", "the"]
Case = Callable[[], go.Figure]


def builders() -> dict[str, Callable[..., go.Figure]]:
    """Every public function of every ``widgets.figures`` module that returns a Figure,
    as ``"module.name"`` → function (found by inspection: a new builder is listed at once)."""
    import widgets.figures as pkg

    out = {}
    for mod_info in pkgutil.iter_modules(pkg.__path__):
        if mod_info.name.startswith("_"):
            continue
        mod = importlib.import_module(f"widgets.figures.{mod_info.name}")
        for name in getattr(mod, "__all__", []):
            fn = getattr(mod, name)
            if inspect.isfunction(fn) and typing.get_type_hints(fn).get("return") is go.Figure:
                out[f"{mod_info.name}.{name}"] = fn
    return out


@cache
def _moons() -> dict[str, Any]:
    import torch

    from explorer.data import make_task
    from explorer.models.mlp import MLP, MLPConfig
    from explorer.train import Trainer, default_probe

    task = make_task("moons", n=300, seed=0)
    model = MLP(MLPConfig(in_dim=2, out_dim=2, depth=2, width=16, seed=0))
    trainer = Trainer(model, task, lr=0.03, eval_every=5, seed=0)
    for _ in trainer.run(80):
        pass
    probe = default_probe(task, resolution=48)
    probs = torch.softmax(trainer.predict(probe.inputs), -1).numpy()
    return dict(
        history=trainer.history, probs=probs, shape=probe.shape, extent=probe.extent,
        x=np.asarray(task.x_test), y=np.asarray(task.y_test),
        weight=model.state_dict()[next(k for k in model.state_dict() if k.endswith("weight"))],
    )  # fmt: skip


@cache
def _signal() -> dict[str, Any]:
    from explorer.analysis.spectra import residual_spectrum
    from explorer.data import make_task
    from explorer.models.mlp import MLP, MLPConfig
    from explorer.train import Trainer

    task = make_task("signal_1d", n=128)
    grid, target = (np.asarray(task.meta[k], dtype=np.float32) for k in ("x_grid", "y_grid"))
    model = MLP(MLPConfig(in_dim=grid.shape[1], out_dim=target.shape[1], depth=2, width=32))
    trainer = Trainer(model, task, lr=0.01, eval_every=10, seed=0)
    steps, residuals = [], []
    for step in range(0, 61, 10):
        if step:
            for _ in trainer.run(10):
                pass
        pred = trainer.predict(grid).numpy()
        steps.append(step)
        residuals.append(residual_spectrum(pred[:, 0], target[:, 0]))
    return dict(grid=grid, target=target, prediction=pred, steps=steps, residuals=residuals)


def _stacked_residual() -> tuple[list[int], Any]:
    from explorer.analysis.spectra import Spectrum

    sig = _signal()
    first = sig["residuals"][0]
    power = np.stack([r.power for r in sig["residuals"]])
    return sig["steps"], Spectrum(freqs=first.freqs, power=power, kind=first.kind)


@cache
def _attention() -> dict[str, Any]:
    from explorer.analysis.attention import attention_rollout, head_statistics

    rng = np.random.default_rng(0)
    t = len(TOKENS)
    att = rng.dirichlet(np.full(t, 0.4), size=(2, 4, t)).astype(np.float32)  # (L, H, T, T)
    att[1, 2] = np.roll(np.eye(t), 1, axis=1) * 0.9 + 0.1 / t  # a previous-token head
    stats = pd.concat(
        [head_statistics(att * (1 - 0.1 * s) + 0.1 * s / t, TOKENS, step=s) for s in range(4)]
    )
    return dict(att=att, stats=stats, rollout=attention_rollout(att))


VOCAB = ["<script>", "a", "b&c", "d", "e", "f", "g", "h"]


@cache
def _interventions() -> dict[str, Any]:
    """A tiny transformer probed by explorer.interventions: patching, attribution, logit lens,
    and the next-token distribution on the clean and on the corrupted input."""
    import torch

    from explorer import interventions as iv
    from explorer.models import Transformer, TransformerConfig

    torch.manual_seed(0)
    cfg = TransformerConfig(vocab_size=8, n_ctx=12, d_model=16, n_layers=2, n_heads=2)
    model = Transformer(cfg).eval()
    g = torch.Generator().manual_seed(0)
    clean, corrupted = (torch.randint(0, 8, (4, 10), generator=g) for _ in range(2))
    clean[:, 0] = 0  # a "<script>" token in every row
    patching = iv.patching_sweep(
        model, clean, corrupted, "resid_pre", answer=clean[:, -1], wrong=corrupted[:, -1]
    )
    with torch.no_grad():
        before = torch.softmax(model(clean[:1])[0, -1], -1).numpy()
        after = torch.softmax(model(corrupted[:1])[0, -1], -1).numpy()
    return dict(
        patching=patching, tokens=[VOCAB[int(i)] for i in clean[0]], before=before, after=after,
        attribution=iv.attribute(model, clean[:1], target=3, vocab=VOCAB),
        lens=iv.logit_lens(model, clean[:1], target=2, vocab=VOCAB, top_k=3),
    )  # fmt: skip


@cache
def _representations() -> dict[str, Any]:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 22, 300)  # more classes than the 8 colours that used to repeat
    x = rng.normal(size=(300, 6)) + labels[:, None] * 0.3
    layers = {f"blocks.{i}": np.tanh(x @ rng.normal(size=(6, 12)) / (i + 1)) for i in range(4)}
    return dict(labels=labels, layers=layers)


def cases() -> dict[str, Case]:
    """Builder name (as in :func:`builders`) → a function that draws it on real results."""
    from explorer.analysis import alignment as al
    from explorer.analysis import geometry as geo
    from explorer.analysis import spectra as sp
    from widgets.figures import alignment, attention, claims, geometry, probe, spectra, training

    def patterns() -> dict[str, np.ndarray]:
        att = _attention()["att"]
        return {f"blocks.{i}.attn.hook_pattern": att[i][None] for i in range(len(att))}

    def spectrum_pair() -> dict[str, Any]:
        sig = _signal()
        return {
            "prediction": sp.power_spectrum(sig["prediction"][:, 0]),
            "target": sp.power_spectrum(sig["target"][:, 0]),
        }

    def esd_fit() -> tuple[np.ndarray, Any]:
        lam = sp.esd(np.random.default_rng(0).standard_t(3, size=(200, 100)))
        return lam, sp.fit_power_law(lam)

    def profile() -> pd.DataFrame:
        rep = _representations()
        return geo.geometry_profile(
            rep["layers"], labels=rep["labels"], metrics=["effective_rank", "NC1"], k=10
        )

    def over_training() -> pd.DataFrame:
        rep = _representations()
        snaps = [(s, {k: v * (1 + s / 10) for k, v in rep["layers"].items()}) for s in (0, 10, 20)]
        return geo.geometry_over_training(snaps, metrics=["effective_rank"], k=10)

    def panels() -> list[alignment.HeatmapPanel]:
        layers = _representations()["layers"]
        names = list(layers)
        m = al.cka_matrix(list(layers.values()))
        return [
            alignment.HeatmapPanel(m, names, names, "seed 0", "seed 0"),
            alignment.HeatmapPanel(m[:, :3], names, names[:3], "seed 0", "seed 1"),
        ]

    def pair() -> go.Figure:
        rep = _representations()
        a, b = (rep["layers"][k] for k in ("blocks.0", "blocks.3"))
        pa, pb = al.aligned_projection(a, b)
        return alignment.aligned_pair_figure(
            pa, pb, names=("seed 0: blocks.0", "seed 1: blocks.3"), labels=rep["labels"] % 5,
            title="Procrustes-aligned PCA of seed 0: blocks.0 and seed 1: blocks.3",
        )  # fmt: skip

    def curve_frame() -> pd.DataFrame:
        rows = [
            {"step": s, "layer_a": f"blocks.{i}", "metric": "linear CKA", "value": v}
            for s in (0, 10, 20)
            for i, v in enumerate(al.cka_matrix(list(_representations()["layers"].values()))[0])
        ]
        return pd.DataFrame(rows).assign(value=lambda d: d.value * (1 - d.step / 40))

    def scatter() -> go.Figure:
        rep = _representations()
        xy = geo.project(rep["layers"]["blocks.1"], "pca", 2)
        return geometry.scatter_figure(
            xy, color=rep["labels"], color_name="class", picked=3, neighbors=[4, 5, 6],
            title="blocks.1 (PCA)",
        )  # fmt: skip

    def seed_ranks() -> tuple[list[int], dict[str, np.ndarray]]:
        """Effective rank of a random tanh layer against its width, over 3 seeds."""
        widths = [2, 4, 8, 16, 32]
        x = np.random.default_rng(0).normal(size=(200, 12))
        ranks = {
            act: np.array([[geo.effective_rank(f(x @ np.random.default_rng(s).normal(size=(12, w))))
                            for w in widths] for s in range(3)])
            for act, f in (("tanh", np.tanh), ("linear", lambda v: v))
        }  # fmt: skip
        return widths, ranks

    def cka_panels() -> list[claims.Panel]:
        layers = list(_representations()["layers"].values())
        m = al.cka_matrix(layers)
        shuffled = al.cka_matrix(layers, [np.random.default_rng(1).permutation(v) for v in layers])
        names = [f"L{i}" for i in range(len(layers))]
        return [
            claims.Panel(m, "trained", names, names),
            claims.Panel(shuffled, "control", names, names),
        ]

    def claim() -> go.Figure:
        from explorer.claims import CLAIM_IDS, ClaimResult

        ranks = seed_ranks()[1]
        result = ClaimResult(
            CLAIM_IDS[0], "reproduced", "effective rank at width 32", tuple(ranks["tanh"][:, -1]),
            (0, 1, 2), "linear layer", tuple(ranks["linear"][:, -1]),
        )  # fmt: skip
        return claims.claim_figure(result)

    moons, sig, att, iv = _moons, _signal, _attention, _interventions
    return {
        "probe.patching_figure": lambda: probe.patching_figure(
            iv()["patching"], tokens=iv()["tokens"], selected={"layer": 1, "position": 3}
        ),
        "probe.attribution_tokens_figure": lambda: probe.attribution_tokens_figure(
            iv()["attribution"].tokens[0],
            iv()["attribution"].values[0],
            per_line=4,
            label="integrated gradients",
        ),
        "probe.attribution_overlay_figure": lambda: probe.attribution_overlay_figure(
            np.outer(np.hanning(16), np.hanning(16)),
            np.outer(np.linspace(-1, 2, 16), np.ones(16)),
            label="saliency",
            title="pixel attribution",
        ),
        "probe.logit_lens_figure": lambda: probe.logit_lens_figure(iv()["lens"]),
        "probe.output_change_figure": lambda: probe.output_change_figure(
            iv()["before"],
            iv()["after"],
            VOCAB,
            top=5,
            names=("clean", "corrupted"),
            title="next-token probabilities",
        ),
        "claims.seed_band_figure": lambda: claims.seed_band_figure(
            *seed_ranks(),
            xlabel="width",
            ylabel="effective rank",
            log_x=True,
            levels={"input rank": 12.0},
            title="effective rank against width",
        ),
        "claims.heatmap_panels": lambda: claims.heatmap_panels(
            cka_panels(), xlabel="layer", ylabel="layer", colorbar_title="linear CKA"
        ),
        "claims.claim_figure": claim,
        "training.metrics_figure": lambda: training.metrics_figure(moons()["history"], step=40),
        "training.decision_surface_figure": lambda: training.decision_surface_figure(
            moons()["probs"],
            moons()["shape"],
            moons()["extent"],
            moons()["x"],
            moons()["y"],
            title="moons, step 80",
        ),
        "training.signal_figure": lambda: training.signal_figure(
            sig()["grid"][:, 0], sig()["target"], sig()["prediction"], title="signal fit"
        ),
        "training.image_figure": lambda: training.image_figure(
            np.clip(np.outer(np.linspace(0, 1, 16), np.linspace(1, 0, 16)) * 1.1, 0, 1).ravel(),
            np.outer(np.linspace(0, 1, 16), np.linspace(1, 0, 16)).ravel(),
            (16, 16),
            title="reconstruction",
        ),
        "training.attention_figure": lambda: training.attention_figure(patterns(), TOKENS),
        "training.sample_predictions_figure": lambda: training.sample_predictions_figure(
            np.random.default_rng(0).random((10, 8, 8)),
            np.eye(4)[[0, 1, 2, 3, 0, 1, 2, 3, 1, 1]],
            [0, 1, 2, 3, 0, 1, 2, 3, 0, 0],
            classes=["circle", "square", "triangle", "cross"],
            title="predicted class of test images, step 80",
        ),
        "spectra.spectrum_figure": lambda: spectra.spectrum_figure(
            spectrum_pair(), dashed=("target",)
        ),
        "spectra.residual_history_figure": lambda: spectra.residual_history_figure(
            *_stacked_residual()
        ),
        "spectra.esd_figure": lambda: spectra.esd_figure(*esd_fit()),
        "spectra.sweep_figure": lambda: spectra.sweep_figure(_sweep()),
        "spectra.zp_figure": lambda: spectra.zp_figure(
            {"embedding": sp.zp_fourier_power(np.random.default_rng(0).normal(size=(23, 8)))}
        ),
        "spectra.dashboard_figure": lambda: spectra.dashboard_figure(
            steps=_stacked_residual()[0],
            residual=_stacked_residual()[1],
            current=spectrum_pair(),
            layers={"layer 0": spectrum_pair()["prediction"]},
            eigenvalues=esd_fit()[0],
            fit=esd_fit()[1],
        ),
        "geometry.scatter_figure": scatter,
        "geometry.layer_metric_figure": lambda: geometry.layer_metric_figure(profile()),
        "geometry.training_metric_figure": lambda: geometry.training_metric_figure(
            over_training(), "effective_rank"
        ),
        "alignment.similarity_heatmaps": lambda: alignment.similarity_heatmaps(
            panels(), selected=(1, 2)
        ),
        "alignment.aligned_pair_figure": pair,
        "alignment.metric_curve_figure": lambda: alignment.metric_curve_figure(
            curve_frame(), title="CKA to blocks.0 over training"
        ),
        "attention.head_grid_figure": lambda: attention.head_grid_figure(
            att()["att"], caption="every head"
        ),
        "attention.attention_map_figure": lambda: attention.attention_map_figure(
            att()["att"][1, 2], TOKENS, title="L1 H2"
        ),
        "attention.head_view_figure": lambda: attention.head_view_figure(
            att()["att"][1][:, 3], TOKENS, query=3, title="layer 1 from 'the'"
        ),
        "attention.token_attribution_figure": lambda: attention.token_attribution_figure(
            {"raw (last layer)": att()["att"][-1].mean(0)[3], "rollout": att()["rollout"][-1, 3]},
            TOKENS,
            query=3,
        ),
        "attention.head_statistics_figure": lambda: attention.head_statistics_figure(
            att()["stats"][att()["stats"].step == 3], "distance", "entropy", selected=(1, 2)
        ),
        "attention.head_scores_over_steps_figure": lambda: attention.head_scores_over_steps_figure(
            att()["stats"], "previous_token"
        ),
        "attention.vit_overlay_figure": lambda: attention.vit_overlay_figure(
            np.outer(np.hanning(32), np.hanning(32)), att()["att"][0, 0, :4, :4], title="patch map"
        ),
        **_sweep_cases(),
    }


def _sweep_cases() -> dict[str, Case]:
    from explorer.analysis import sweep as an
    from widgets.figures import sweep

    def trials() -> pd.DataFrame:  # final test loss and accuracy of every trial
        result = _sweep_result()
        loss = result.final("test_loss").rename(columns={"value": "test_loss"})
        acc = result.final("test_acc")[["trial_id", "value"]].rename(columns={"value": "test_acc"})
        return loss.merge(acc, on="trial_id")

    return {
        "sweep.metric_figure": lambda: sweep.metric_figure(
            _sweep_result().final(),
            "width",
            metric="test_loss",
            selected=str(_sweep_result().trials()["trial_id"].iloc[0]),
            title="test loss",
        ),
        "sweep.seed_cka_figure": lambda: sweep.seed_cka_figure(an.seed_cka(_sweep_result())),
        "sweep.config_cka_figure": lambda: sweep.config_cka_figure(an.config_cka(_sweep_result())),
        "sweep.disagreement_figure": lambda: sweep.disagreement_figure(
            an.seed_disagreement(_sweep_result())
        ),
        "sweep.relation_figure": lambda: sweep.relation_figure(
            trials(),
            "test_loss",
            "test_acc",
            color="width",
            symbol="seed",
            title="final test loss and accuracy of each trial",
        ),
    }


@cache
def _sweep_result() -> Any:
    """A small real sweep: 3 widths × 3 seeds of an MLP on moons, 30 steps, in this process."""
    import tempfile

    from explorer.models import MLPConfig
    from explorer.train.sweep import run_sweep

    return run_sweep(
        "moons", MLPConfig(in_dim=2, out_dim=2, depth=2, width=8), grid={"width": [4, 8, 16]},
        seeds=[0, 1, 2], steps=30, train={"lr": 0.03, "eval_every": 10}, progress=False,
        workers=0, directory=tempfile.mkdtemp(prefix="gallery-sweep-"),
    )  # fmt: skip


@cache
def _sweep() -> Any:
    from explorer.analysis.spectra import fourier_feature_sweep
    from explorer.data import make_task

    task = make_task("signal_1d", n=64)
    return fourier_feature_sweep(task, [1.0, 4.0, 16.0], width=16, depth=2, n_fourier=8, steps=20)


def contact_sheet(paths: list[Path], out: Path, *, columns: int = 4, cell: int = 520) -> Path:
    """Tile PNGs (each shrunk to fit a ``cell`` px square, name below) into one image."""
    from PIL import Image, ImageDraw

    rows = -(-len(paths) // columns)
    sheet = Image.new("RGB", (columns * cell, rows * (cell + 24)), "#bbbbbb")
    draw = ImageDraw.Draw(sheet)
    for i, path in enumerate(paths):
        im = Image.open(path).convert("RGB")
        im.thumbnail((cell - 8, cell - 8))
        x, y = (i % columns) * cell, (i // columns) * (cell + 24)
        sheet.paste(im, (x + 4, y + 4))
        draw.text((x + 6, y + cell), path.stem, fill="#000")
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    return out


def _main(folder: str) -> None:
    from widgets.export import EXPORT_SIZES, export

    root = Path(folder)
    figures = {name: case() for name, case in cases().items()}
    for size in EXPORT_SIZES:
        paths = [
            export(fig, root / size / f"{name}.png", size=size) for name, fig in figures.items()
        ]
        print(contact_sheet(paths, root / f"contact_sheet_{size}.png"))


if __name__ == "__main__":
    _main(sys.argv[1] if len(sys.argv) > 1 else "artifacts/figures")
