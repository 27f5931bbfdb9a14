"""Every lab through every control state in real JupyterLab, with what a person sees asserted.

One notebook (written here through the server's contents API) shows the five labs; four of them
follow the training lab. The training lab goes through every task family (2-D toy, 1-D and 2-D
fields, image classes with a CNN and a ViT, a sequence task) and the followers redraw; the
attention lab goes through each tab and a 500-token (then a too-long) input; the geometry lab
through its projections and colourings; the alignment lab through metrics, a clicked cell and
the compared step. After each state the lab's DOM must hold the invariants of
``labsession.LAYOUT_PROBLEMS`` (controls that apply visible and the others hidden, nothing
past the output area's right edge, every heatmap with a titled colour bar, no error output),
and a screenshot of the lab is saved under ``artifacts/browser/states/``.
"""

from __future__ import annotations

from typing import Any

from labsession import LabSession

SETUP = """\
import pathlib, tempfile
import numpy as np, pandas as pd, torch
torch.set_num_threads(1)
from widgets import AlignmentLab, AttentionLab, GeometryLab, SpectrumLab, TrainingLab
out = pathlib.Path(tempfile.mkdtemp())
tl = TrainingLab("spirals", record_every=10, out_dir=out)
tl.step(40)
tl"""
CELLS = [
    SETUP,
    """from explorer.models import load_minilm
lm = load_minilm()
att = AttentionLab(source=(lm, "The cat sat on the mat because it was warm."), title="MiniLM", out_dir=out)
att""",
    "spec = SpectrumLab(source=tl, out_dir=out, min_interval_s=0)\nspec",
    "geo = GeometryLab(source=tl, n_inputs=150, out_dir=out, min_interval_s=0)\ngeo",
    "ali = AlignmentLab(source=tl, n_inputs=128, out_dir=out, min_interval_s=0)\nali",
    """rng = np.random.default_rng(0)
df = pd.DataFrame(rng.normal(size=(300, 2)), columns=["a", "b"])
df["label"] = np.where(df.a * df.b > 0, "same", "opposite")
net = torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2))
mine = TrainingLab(model=net, data=df, target="label", out_dir=out)
mine.step(30)
mine""",
]
FOLLOWERS = "spec.wait(); geo.wait(); ali.wait(); print('ok')"

# per task: the settings applied, the controls that must show and those that must not
TASKS: list[tuple[str, str, list[str], list[str]]] = [
    ("toy", "task='moons'", [".xp-training-noise", ".xp-training-n", ".xp-training-mlp-width"],
     [".xp-training-transformer-n-heads", ".xp-training-cnn-channels"]),
    ("signal", "task='signal_1d'", [".xp-training-mlp-encoding", ".xp-training-mlp-fourier-scale"],
     [".xp-training-noise", ".xp-training-n", ".xp-training-test-fraction"]),
    ("image_fit", "task='image', family='neural_field'", [".xp-training-neural-field-omega0"],
     [".xp-training-noise", ".xp-training-mlp-width"]),
    ("digits_cnn", "task='digits'", [".xp-training-cnn-channels", ".xp-training-test-fraction"],
     [".xp-training-noise", ".xp-training-mlp-width"]),
    ("shapes_vit", "task='shapes', family='vit'", [".xp-training-vit-patch-size"],
     [".xp-training-cnn-channels", ".xp-training-noise"]),
    ("copy", "task='copy'", [".xp-training-transformer-n-heads", ".xp-training-test-fraction"],
     [".xp-training-noise", ".xp-training-n", ".xp-training-mlp-width"]),
]  # fmt: skip
ALWAYS = [".xp-training-task", ".xp-training-lr", ".xp-training-batch-size", ".xp-lab-export"]


def _check(lab: LabSession, root: Any, name: str, visible=(), hidden=()) -> None:  # type: ignore[no-untyped-def]
    lab.page.wait_for_timeout(400)  # let the last comm messages render
    problems = lab.layout_problems(root, visible, hidden)
    lab.lab_screenshot(root, name)
    assert not problems, f"{name}: {problems}"


def test_every_lab_through_every_control_state(lab: LabSession) -> None:
    lab.page.set_viewport_size({"width": 1400, "height": 2200})  # whole labs in the screenshots
    lab.open(lab.write_notebook("labs_states.ipynb", CELLS))
    lab.run_all(timeout_s=300)
    page = lab.page
    labs = {
        k: page.locator(f".xp-{k}-lab").first
        for k in ("attention", "spectrum", "geometry", "alignment")
    }
    training = page.locator(".xp-training-lab").nth(0)
    mine = page.locator(".xp-training-lab").nth(1)
    training.locator(".xp-grid-cell canvas").first.wait_for(timeout=30_000)

    # your own model and data: no family menu, the decision surface of your DataFrame
    _check(lab, mine, "training_your_data", [".xp-training-task", ".xp-training-lr"],
           [".xp-training-family", ".xp-training-mlp-width", ".xp-training-noise"])  # fmt: skip

    # the training lab through every task family; the followers redraw each time
    for name, settings, visible, hidden in TASKS:
        assert lab.kernel(f"tl.configure({settings}); tl.step(12); {FOLLOWERS}").strip() == "ok"
        page.wait_for_function(
            "(el) => el.querySelector('.xp-lab-step-label').textContent.includes('trained 12')",
            arg=training.element_handle(), timeout=20_000,
        )  # fmt: skip
        _check(lab, training, f"training_{name}", [*ALWAYS, *visible], hidden)
        field = name in ("signal", "image_fit")
        spectrum_panels = [".xp-spectrum-heatmap", ".xp-spectrum-current", ".xp-spectrum-layers"]
        _check(lab, labs["spectrum"], f"spectrum_{name}", [".xp-spectrum-esd", *(spectrum_panels if field else [])],
               [] if field else spectrum_panels)  # fmt: skip
        _check(
            lab,
            labs["geometry"],
            f"geometry_{name}",
            [".xp-geometry-scatter", ".xp-geometry-layer"],
        )
        _check(lab, labs["alignment"], f"alignment_{name}", [".xp-alignment-heatmap canvas"])
        errors = lab.kernel("print([l.last_error for l in (tl, spec, geo, ali)])").strip()
        assert errors == "[None, None, None, None]", (name, errors)

    # back to a 2-D toy for the geometry and alignment states
    lab.kernel(f"tl.configure(task='spirals'); tl.step(30); {FOLLOWERS}")
    geometry = labs["geometry"]
    for name, code in (("3d", "geo.select(dims=3)"), ("tsne", "geo.select(projection='t-SNE', dims=2)"),
                       ("umap", "geo.select(projection='UMAP')"), ("step_colours", "geo.select(projection='PCA', color='step')"),
                       ("picked", "geo.select(color='label'); geo.pick(3)")):  # fmt: skip
        lab.kernel(f"{code}; print(geo.last_error)")
        _check(lab, geometry, f"geometry_{name}", [".xp-geometry-scatter .main-svg"])
    assert "nearest neighbours" in geometry.locator(".xp-geometry-info").inner_text()

    alignment = labs["alignment"]
    label = "angular Procrustes distance (rad) [procrustes]".replace(" ", "\xa0")  # as rendered
    alignment.locator(".xp-alignment-metric select").select_option(label=label)
    page.wait_for_function(
        "(el) => el.querySelector('.xp-grid-caption').textContent.includes('lower = more similar')",
        arg=alignment.element_handle(), timeout=20_000,
    )  # fmt: skip
    _check(lab, alignment, "alignment_procrustes", [".xp-alignment-heatmap .xp-colorbar"])
    lab.kernel("ali.click(1, 1); ali.compare_with(tl.recorder.steps[1]); print(ali.last_error)")
    alignment.locator(".xp-grid-cell[data-marked='1,1']").wait_for(timeout=20_000)
    _check(lab, alignment, "alignment_cell", [".xp-alignment-pair .main-svg", ".xp-alignment-step"])

    # the attention lab: every tab, then a 500-token input, then one longer than the model reads
    attention = labs["attention"]
    for tab, visible in (("Heads", ".xp-attention-detail canvas"), ("Head view", ".xp-attention-headview canvas"),
                         ("Rollout / flow", ".xp-attention-rollout canvas"), ("Statistics", ".xp-attention-table")):  # fmt: skip
        attention.get_by_role("tab", name=tab).click()
        attention.locator(visible).first.wait_for(timeout=20_000)
        _check(lab, attention, f"attention_{tab.split()[0].lower()}", [visible])
    attention.get_by_role("tab", name="Heads").click()
    words = " ".join(["the quick brown fox jumps over the lazy dog"] * 60)
    text = " ".join(words.split()[:496])  # ~500 tokens: within MiniLM's 512
    n = lab.kernel(f"att.follow((lm, {text!r})); print(att.patterns.shape[2])")
    assert 480 <= int(n) <= 512, n
    _check(
        lab,
        attention,
        "attention_500_tokens",
        [".xp-attention-grid canvas", ".xp-attention-detail canvas"],
    )
    assert "block means" in attention.locator(".xp-lab-status").inner_text()
    lab.kernel(f"att.follow((lm, {words!r} * 2)); print(att.last_error)")
    page.wait_for_function(
        "(el) => el.querySelector('.xp-lab-status').textContent.includes('cut to the model')",
        arg=attention.element_handle(), timeout=20_000,
    )  # fmt: skip
    _check(lab, attention, "attention_cut_text", [".xp-attention-grid canvas"])
    assert not lab.page_errors, lab.page_errors
