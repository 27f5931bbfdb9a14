"""Frequency lens benchmarks, ours and peers in the same run (run from bench/):

1. weight-spectrum analysis of all MiniLM matrices: ``weight_spectra`` vs ``weightwatcher``
   (``WeightWatcher.analyze``), α values compared layer by layer;
2. the Clauset power-law fit alone (numba xmin scan) vs the ``powerlaw`` package and
   WeightWatcher's own fit, on the ESD of one 384 x 1536 matrix;
3. the FreSh σ sweep: one batched computation (vmap over stacked models) vs a loop over models.

All BLAS/torch work runs on one thread for both sides (on a shared 2-core machine, multi-threaded
BLAS under contention is 10-50x slower and would measure the neighbours, not the code).
"""

from __future__ import annotations

import io
import logging
import os
import sys
import warnings
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _harness import Bench, peak_python_memory

from explorer.analysis import spectra as S
from explorer.data.signals import signal_1d
from explorer.models.hf import load_minilm


def quiet(fn):  # type: ignore[no-untyped-def]
    """Run a chatty peer without its prints, warnings and log lines."""

    def run():  # type: ignore[no-untyped-def]
        with (
            redirect_stdout(io.StringIO()),
            redirect_stderr(io.StringIO()),
            warnings.catch_warnings(),
        ):
            warnings.simplefilter("ignore")
            return fn()

    return run


def bench_minilm(b: Bench) -> None:
    import weightwatcher as ww

    logging.getLogger("weightwatcher").setLevel(logging.ERROR)
    minilm = load_minilm()
    results: dict[str, object] = {}

    def ours():  # type: ignore[no-untyped-def]
        results["ours"] = S.weight_spectra(minilm)

    def peer():  # type: ignore[no-untyped-def]
        results["peer"] = ww.WeightWatcher(model=minilm.model).analyze(plot=False)

    case = "MiniLM weight spectra (37 matrices)"
    b.time(case, ours, quiet(peer), peer_name="weightwatcher", repeat=3, peer_repeat=1, warmup=0)
    mine = results["ours"].pivot(index="layer", columns="metric", values="value")  # type: ignore[attr-defined]
    theirs = results["peer"]
    theirs = theirs.assign(key=theirs["longname"].str.removeprefix("model.")).set_index("key")  # type: ignore[attr-defined]
    mine.index = [n.removeprefix("model.") for n in mine.index]
    common = [n for n in mine.index if n in theirs.index]
    d_alpha = np.abs(mine.loc[common, "alpha"].to_numpy() - theirs.loc[common, "alpha"].to_numpy())
    ratio = (
        mine.loc[common, "stable_rank"].to_numpy() / theirs.loc[common, "stable_rank"].to_numpy()
    )
    b.note(case, "layers compared", len(common))
    if common:
        b.note(case, "median |alpha - alpha_ww|", float(np.median(d_alpha)))
        b.note(case, "share of layers with |d alpha| < 0.01", float(np.mean(d_alpha < 0.01)))
        b.note(case, "max |d alpha|", float(d_alpha.max()))
        b.note(case, "max rel. diff stable rank", float(np.abs(ratio - 1).max()))
    # WeightWatcher lets a tail be as short as 2 eigenvalues; ours needs min_tail=10 by default
    same = S.weight_spectra(minilm, min_tail=2).pivot(
        index="layer", columns="metric", values="value"
    )
    same.index = [n.removeprefix("model.") for n in same.index]
    d_same = np.abs(same.loc[common, "alpha"].to_numpy() - theirs.loc[common, "alpha"].to_numpy())
    if common:
        b.note(case, "max |d alpha| with min_tail=2 (WW's rule)", float(d_same.max()))
    b.note(case, "peak Python memory ours (MB)", peak_python_memory(ours) / 1e6)


def bench_fit(b: Bench) -> None:
    import powerlaw
    from weightwatcher.WW_powerlaw import WWFit

    minilm = load_minilm()
    lam = S.layer_esds(minilm, include=["*layer.0.intermediate.dense"])
    ev = next(iter(lam.values()))
    case = f"power-law fit, ESD n={ev.size}"
    S.fit_power_law(ev)  # compile / load the cached kernel outside the timing
    b.time(
        case,
        lambda: S.fit_power_law(ev),
        quiet(lambda: powerlaw.Fit(ev, verbose=False)),
        peer_name="powerlaw",
        repeat=5,
    )
    b.time(
        case + " (vs WW fit)",
        lambda: S.fit_power_law(ev, min_tail=2),
        quiet(lambda: WWFit(ev)),
        peer_name="weightwatcher WWFit",
        repeat=5,
    )
    ours, ref = S.fit_power_law(ev, min_tail=2), quiet(lambda: powerlaw.Fit(ev, verbose=False))()
    wwfit = WWFit(ev)
    b.note(
        case,
        "alpha ours / powerlaw / WWFit",
        f"{ours.alpha:.4f} / {ref.alpha:.4f} / {wwfit.alpha:.4f}",
    )
    b.note(
        case, "xmin ours / powerlaw / WWFit", f"{ours.xmin:.4f} / {ref.xmin:.4f} / {wwfit.xmin:.4f}"
    )
    boot = S.fit_power_law(ev, n_bootstrap=100)
    b.time(case + ", bootstrap p (100)", lambda: S.fit_power_law(ev, n_bootstrap=100), repeat=3)
    b.note(case, "bootstrap p-value", boot.p_value)


def bench_sweep(b: Bench) -> None:
    task = signal_1d("chirp", 256, f_start=1.0, f_end=60.0)
    sigmas = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0]
    kw = dict(steps=150, width=64, n_fourier=64)
    case = "FreSh sweep, 7 sigmas x 150 steps"
    b.time(
        case,
        lambda: S.fourier_feature_sweep(task, sigmas, **kw),
        lambda: S.fourier_feature_sweep(task, sigmas, batched=False, **kw),
        peer_name="loop over models",
        repeat=3,
        warmup=0,
    )
    one = S.fourier_feature_sweep(task, sigmas, **kw)
    loop = S.fourier_feature_sweep(task, sigmas, batched=False, **kw)
    b.note(
        case,
        "max |test PSNR batched - loop| (dB)",
        float(np.abs(one.test_psnr - loop.test_psnr).max()),
    )


def main() -> None:
    torch.set_num_threads(1)
    b = Bench("spectra")
    with threadpool_limits(1):
        bench_fit(b)
        bench_minilm(b)
        bench_sweep(b)
    b.note("machine", "load average at end", os.getloadavg()[0])
    b.report()


if __name__ == "__main__":
    main()
