"""ProbeLab without a browser: every view is the plain function's result (the lab only wires),
clicks on the patching map and the attention grid select sites and heads, the step slider
re-probes the model of that step, export, escaping, and a Hugging Face causal LM as a source."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from explorer import interventions as iv
from explorer.data import make_task
from explorer.models import Transformer, TransformerConfig
from explorer.train import Recorder, Trainer
from widgets.probe import ProbeLab

EVIL = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def trained():
    torch.manual_seed(0)
    task = make_task("repeated_segment", n=600, seq_len=13, n_symbols=10, seed=0)
    cfg = TransformerConfig(vocab_size=10, n_ctx=13, d_model=32, n_layers=2, n_heads=2,
                            pos="learned", seed=0)  # fmt: skip
    trainer = Trainer(Transformer(cfg), task, lr=3e-3, batch_size=64, eval_every=10**6, seed=0)
    recorder = Recorder(trainer, every=20, attention=False)
    recorder.record()
    for _ in trainer.run(40):
        recorder.maybe_record()
    return trainer, recorder, task


def test_views_are_the_plain_functions_and_clicks_select(trained, tmp_path):
    trainer, _, task = trained
    model = trainer.model.eval()
    vocab = list(task.meta["vocab"])
    vocab[3] = EVIL
    lab = ProbeLab((model, task), n_inputs=16, vocab=vocab, out_dir=tmp_path)
    assert "xp-probe-lab" in lab._dom_classes and lab.last_error is None
    assert lab.views == ("patching", "intervention", "attribution", "logit_lens")
    x, y = task.x_test[:16], task.y_test[:16]
    # the default read-out: the task's scored tokens (loss); corrupted = rows shifted by one
    assert lab.metric == "loss" and "shifted by one row" in lab.status
    expected = iv.patching_sweep(model, x, x.roll(1, 0), "resid_pre", metric="loss", targets=y)
    pd.testing.assert_frame_equal(lab.patching, expected)
    assert lab.patch_grid.shape == [1, 2, 13] and lab.patch_grid.colorbar_title
    # click a cell of the map: that site is patched alone, and the bars show its output
    lab.patch_grid.clicked_cell = [1, 7]
    assert lab.site == {"layer": 1, "head": None, "position": 7}
    bars = lab.site_change.data
    pos = int(torch.where(y[0] != -100)[0].max())
    patched = iv.patch(model, x, x.roll(1, 0), "blocks.1.hook_resid_pre", position=7)
    want = torch.softmax(patched[0, pos], -1).numpy()
    np.testing.assert_allclose(sorted(bars[1].x)[-1], want.max(), rtol=1e-5)
    # heads × position: one row per (layer, head)
    lab.sweep_select.value = "heads × position"
    assert lab.patch_grid.shape == [1, 4, 13] and lab.patching.attrs["by"] == "head_position"
    lab.patch_grid.clicked_cell = [3, 5]
    assert lab.site == {"layer": 1, "head": 1, "position": 5}

    # the attention grid: a click picks the head; mean ablation equals iv.ablate
    lab.tabs.selected_index = 1
    lab.action.value = "mean ablation"
    lab.head_grid.selected = 2
    assert (lab.layer, lab.head) == (1, 0)
    out = iv.ablate(model, x, "blocks.1.attn.hook_z", head=0, method="mean")
    after = lab.effect[lab.effect.run == "after"].value.iloc[0]
    want_loss = float(iv.metric_fn("loss", targets=y)(out).mean())
    assert after == pytest.approx(want_loss, rel=1e-6)
    assert "mean ablation of L1 H0" in lab.status and "→" in lab.status
    lab.action.value = "patch from clean"
    assert lab.effect.value.iloc[0] == pytest.approx(lab.patching.attrs["corrupted"], rel=1e-6)
    # steering the head's output to clean (its mean difference, ×2) on the corrupted run
    lab.action.value = "steer to clean"
    lab.scale.value = 2.0
    v = iv.steering_vector(model, x, x.roll(1, 0), "blocks.1.attn.hook_z", head=0)
    out = iv.steer(model, x.roll(1, 0), "blocks.1.attn.hook_z", v, 2.0, head=0)
    after = lab.effect[lab.effect.run == "after"].value.iloc[0]
    assert after == pytest.approx(float(iv.metric_fn("loss", targets=y)(out).mean()), rel=1e-6)
    assert "steering L1 H0 to clean (×2)" in lab.status

    # attribution through Captum: integrated gradients is complete, said in the status
    lab.tabs.selected_index = 2
    a = iv.attribute(model, x[:1], target=iv.metric_fn("loss", targets=y[:1]))
    np.testing.assert_allclose(lab.attribution.values, a.values, rtol=1e-5, atol=1e-7)
    assert "completeness error" in lab.status and lab.attribution.is_complete(0.01)

    # logit lens of the shown row; another row redraws every view
    lab.tabs.selected_index = 3
    lens = iv.logit_lens(model, x[:1], target=torch.cat([x[0, 1:], x[0, -1:]]), vocab=vocab,
                         top_k=3)  # fmt: skip
    pd.testing.assert_frame_equal(lab.lens, lens)
    lab.row_select.value = 2
    assert lab.row == 2 and lab.lens["input"].iloc[0] == vocab[int(x[2, 0])]

    # export: figures and their data; token text stays text
    assert lab.export(tmp_path / "lens.html").stat().st_size > 10_000
    frame = pd.read_csv(lab.export(tmp_path / "patching.csv", "patching"))
    assert len(frame) == 2 * 2 * 13
    html_text = (lab.export(tmp_path / "att.html", "attribution")).read_text()
    assert "<script>alert(1)" not in html_text
    assert all(EVIL not in o[0] or "&lt;" not in o[0] for o in lab.row_select.options)
    for view in lab.views:
        fig = lab.to_figure(view)
        assert fig.layout.title.text and all(
            t.colorbar.title.text for t in fig.data if t.type == "heatmap"
        )
    lab.close()
    lab.close()


def test_follows_a_recorder_and_steps_back(trained):
    _, recorder, _ = trained
    lab = ProbeLab(recorder, n_inputs=8)
    assert lab.step == recorder.steps[-1] and lab.last_error is None
    late = lab.patching.restored.to_numpy()
    lab.show_step(recorder.steps[0])
    assert lab.step == recorder.steps[0]
    assert not np.allclose(lab.patching.restored.to_numpy(), late)
    assert f"step {recorder.steps[0]}" in lab.status
    lab.close()


def test_bad_input_is_said(trained):
    trainer, _, task = trained
    with pytest.raises(ValueError, match="metric"):
        ProbeLab((trainer.model, task), metric="bleu")
    lab = ProbeLab((trainer.model, task), corrupted=task.x_test[:5, :10], n_inputs=8)
    assert lab.last_error and "corrupted" in lab.last_error
    lab.close()
    linear = torch.nn.Sequential(torch.nn.Linear(2, 3))
    lab = ProbeLab((linear, torch.zeros(4, 2)))
    assert lab.last_error and "attention heads" in lab.last_error
    lab.close()


def test_follows_a_training_lab_and_its_saved_run(tmp_path):
    from widgets import TrainingLab

    tl = TrainingLab("copy", record_every=10, out_dir=tmp_path)
    tl.step(20)
    live = ProbeLab(tl, n_inputs=8)
    run = ProbeLab(tl.save(), n_inputs=8)  # the run directory: model rebuilt from its checkpoint
    assert live.last_error is None and run.last_error is None, (live.status, run.status)
    assert run.step == live.step == 20
    pd.testing.assert_frame_equal(run.patching, live.patching)
    for lab in (live, run):
        lab.close()
    tl.close()
