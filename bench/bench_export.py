"""PNG export: ours (``widgets.export``, with the browser warmed up when a lab is first shown)
against plotly's own ``fig.write_image``, in one run.

First export: each measured in a fresh process (first-ness is per process), the processes of
ours and plotly alternating. Ours twice: asked at once after the lab is shown (``warm_up()``
has just started the browser: the worst case), and asked once the warm-up is done (a person
looks at a lab for seconds before exporting). Later exports: in one process, ours and plotly
alternating with a pause before each (a person clicking Export), each on a warm browser: ours,
and plotly's ``write_image`` with kaleido's sync server started once (kaleido's documented fast
path: plotly at its best). Goals (issue 20): the first PNG no slower than plotly's; every later
export ≤ 0.3 s.
Agreement: the two PNGs' pixels, decoded.
"""

from __future__ import annotations

import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
from _harness import Bench

REPEAT_FIRST = 5
ROOT = Path(__file__).resolve().parents[1]

HERE = Path(__file__).resolve().parent
FIRST = """
import json, sys, time
from bench_export import make_figure
from widgets.export import export, warm_up
mode, out = sys.argv[1], sys.argv[2]
fig = make_figure()
if mode == "plotly":
    t0 = time.perf_counter()
    fig.write_image(out, scale=2)
    print(json.dumps({"first": time.perf_counter() - t0}))
else:
    t0 = time.perf_counter()
    thread = warm_up()                        # the lab is shown
    if mode == "ours after warm-up":
        thread.join()                         # the person looks at the lab for a few seconds
    warm = time.perf_counter() - t0
    t0 = time.perf_counter()
    export(fig, out)
    print(json.dumps({"first": time.perf_counter() - t0, "warm_up": warm}))
"""


def make_figure() -> go.Figure:
    """A 48-token attention map (repeated tokens, colour bar, rotated tick labels)."""
    from widgets.figures.attention import attention_map_figure

    rng = np.random.default_rng(0)
    tokens = [f"t{i % 23}" for i in range(48)]
    return attention_map_figure(rng.dirichlet(np.ones(48), 48), tokens, title="layer 1, head 3")


def first_export(mode: str, out: Path) -> dict[str, float]:
    """Seconds of the first PNG export of a fresh process (and of its warm-up, for ours)."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    done = subprocess.run(
        [sys.executable, "-c", FIRST, mode, str(out)], capture_output=True, text=True,
        check=True, cwd=HERE, env={**os.environ, "PYTHONPATH": path},
    )  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def clicks(fns: list[Callable[[], object]], repeat: int, pause: float = 0.5) -> list[list[float]]:
    """Seconds per call, the fns alternating, each call after ``pause`` s idle: a person clicks
    Export now and then, not in a tight loop (a tab reloading from the last export may finish
    in the pause, for ours as for plotly). One untimed call of each first."""
    for fn in fns:
        fn()
    out: list[list[float]] = [[] for _ in fns]
    for _ in range(repeat):
        for fn, times in zip(fns, out, strict=True):
            time.sleep(pause)
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    return out


def pixels_differ(a: bytes, b: bytes) -> str:
    from PIL import Image

    x, y = (np.asarray(Image.open(io.BytesIO(d)).convert("RGB"), dtype=np.int16) for d in (a, b))
    if x.shape != y.shape:
        return f"sizes differ {x.shape} vs {y.shape}"
    diff = np.abs(x - y)
    return (
        "identical pixels"
        if not diff.any()
        else f"max |Δ| {diff.max()} on {np.mean(diff.any(-1)):.2%} of pixels"
    )


def main() -> None:
    warnings.filterwarnings("ignore", "The kopts argument is ignored")  # plotly → kaleido server
    bench = Bench("export")
    tmp = Path(tempfile.mkdtemp())
    modes = ["plotly", "ours at once", "ours after warm-up"]
    runs: dict[str, list[dict[str, float]]] = {m: [] for m in modes}
    for r in range(REPEAT_FIRST):  # fresh processes, the three kinds alternating
        for m in modes:
            runs[m].append(first_export(m, tmp / f"{m.replace(' ', '_')}{r}.png"))
    peer = statistics.median(x["first"] for x in runs["plotly"])
    agreement = pixels_differ(
        (tmp / "plotly0.png").read_bytes(), (tmp / "ours_at_once0.png").read_bytes()
    )
    for m in modes[1:]:
        ours = statistics.median(x["first"] for x in runs[m])
        warm = statistics.median(x["warm_up"] for x in runs[m])
        bench.note(f"first PNG, {m}", "runs_s", [round(x["first"], 3) for x in runs[m]])
        bench.note(f"first PNG, {m}", "warm_up_s (background)", round(warm, 3))
        bench.summary(
            case=f"first PNG export, {m} after the lab is shown", size="48×48 attention map",
            ours_s=ours, peer="plotly write_image (first in process)", peer_s=peer,
            agreement=agreement, goal_ratio=1.0,
        )  # fmt: skip
    bench.note("first PNG, plotly", "runs_s", [round(x["first"], 3) for x in runs["plotly"]])

    # later exports: one process, one warm server for both
    import kaleido

    from widgets.export import export, find_chromium, warm_up

    fig = make_figure()
    warm_up().join()
    # plotly at its best: kaleido's documented sync server, started once (write_image uses it)
    kaleido.start_sync_server(path=find_chromium(), mathjax=False, silence_warnings=True)
    fig.write_image(tmp / "warm.png")
    ours_png, peer_png = tmp / "later_ours.png", tmp / "later_plotly.png"
    cases = {
        "screen": lambda: export(fig, ours_png),
        "column": lambda: export(fig, tmp / "later_column.png", size="column"),
    }
    t_ours, t_col, t_peer = clicks(
        [cases["screen"], cases["column"], lambda: fig.write_image(peer_png, scale=2)], 9
    )
    agreement = pixels_differ(peer_png.read_bytes(), ours_png.read_bytes())
    for name, times in (("screen size (2× PNG)", t_ours), ("column size (300 dpi)", t_col)):
        ours = statistics.median(times)
        bench.note(f"later PNG, {name}", "runs_s", [round(t, 3) for t in times])
        bench.summary(
            case=f"later PNG export, {name}", size="48×48 attention map", ours_s=ours,
            peer="plotly write_image (kaleido sync server, warm)", peer_s=statistics.median(t_peer),
            agreement=agreement if name.startswith("screen") else "print layout (no peer equivalent)",
            limit=0.3 / ours, limit_of="the 0.3 s budget (budget / time)", goal_limit=1.0,
        )  # fmt: skip
    bench.report()


if __name__ == "__main__":
    main()
