"""AttentionLab without a browser: built-in transformer capture, selection, windows, export,
escaping, bytes sent, and following recorded snapshots."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from explorer.analysis import attention as A
from explorer.models import Transformer, TransformerConfig, capture
from widgets.attention import AttentionLab

EVIL = "<script>alert(1)</script>"


def random_attention(shape, seed=0):
    x = np.random.default_rng(seed).random(shape).astype(np.float32) ** 4 + 1e-6
    return x / x.sum(-1, keepdims=True)


@pytest.fixture(scope="module")
def model_and_tokens():
    cfg = TransformerConfig(
        vocab_size=12,
        n_ctx=16,
        d_model=32,
        n_layers=3,
        n_heads=4,
        attention=["softmax", "linear", "sliding"],
    )
    model = Transformer(cfg).eval()
    return model, torch.randint(0, 12, (1, 16), generator=torch.Generator().manual_seed(0))


def test_every_variant_of_the_builtin_transformer_is_comparable(model_and_tokens):
    model, ids = model_and_tokens
    cache = capture(model, ids, names=["blocks.*.attn.hook_pattern"])
    stats = A.head_statistics(cache, [str(int(i)) for i in ids[0]])
    dist = stats[stats.metric == "distance"].groupby("layer")["value"].mean()
    assert dist[2] < 4  # the sliding layer (window 4) stays local
    assert dist[1] > dist[2]
    roll = A.attention_rollout(cache)
    np.testing.assert_allclose(roll.sum(-1), 1.0, atol=1e-9)
    causal = np.triu(np.ones((16, 16), bool), 1)
    assert np.abs(roll[-1][causal]).max() < 1e-12  # causal attention never mixes in the future


def test_lab_from_model_select_query_and_views(model_and_tokens, tmp_path):
    model, ids = model_and_tokens
    toks = [str(int(i)) for i in ids[0]]
    toks[2] = EVIL
    lab = AttentionLab(source=(model, ids), tokens=toks)
    assert "xp-attention-lab" in lab._dom_classes and lab.views == (
        "grid", "head", "head_view", "rollout", "statistics")  # fmt: skip
    assert lab.grid.shape == [12, 16, 16] and lab.grid.columns == 4
    lab.grid.selected = 6  # a click on layer 1 head 2
    assert (lab.layer, lab.head) == (1, 2)
    np.testing.assert_array_equal(
        np.frombuffer(lab.detail.values, np.float32).reshape(16, 16),
        lab.patterns.numpy()[1, 2].astype(np.float32),
    )
    lab.head_view.query = 7  # a click on a token in the head view
    assert lab.query == 7 and lab.query_select.value == 7
    for tab in range(4):
        lab.tabs.selected_index = tab
    assert lab.table.rows and len(lab.table.rows) == 12
    # the statistics scatter opens on two different metrics (never entropy against entropy)
    assert lab.selection["x_metric"] == "distance" and lab.selection["y_metric"] == "entropy"
    lab.tabs.selected_index = 0
    lab.tabs.selected_index = 3
    assert lab.x_metric.value != lab.y_metric.value
    lab.table.selected = 11
    assert (lab.layer, lab.head) == (2, 3) and lab.grid.selected == 11
    for view in ("grid", "head", "head_view", "rollout", "statistics"):
        fig = lab.to_figure(view)
        assert fig.data, view
    out = lab.export(tmp_path / "head.html", "head")
    text = out.read_text()
    assert EVIL not in text and "&lt;script&gt;alert(1)" in text
    assert lab.export(tmp_path / "stats.csv", "statistics").read_text().startswith("layer,head")
    head = lab.frame("head")
    assert len(head) == 16 * 16 and set(head.query_token) >= {EVIL}
    np.testing.assert_allclose(head.groupby("query")["weight"].sum(), 1.0, atol=1e-5)
    hv = lab.frame("head_view")
    assert (hv["query"] == 7).all() and len(hv) == 4 * 16
    with pytest.raises(ValueError, match="unknown view"):
        lab.to_figure("bogus")
    assert lab.last_error is None and lab.status.startswith("16 tokens")


def test_long_sequences_are_pooled_and_windowed_and_say_so():
    t = 600
    lab = AttentionLab(random_attention((2, 3, t, t)), [EVIL] * t, thumb_size=40, window=100)
    assert lab.grid.shape == [6, 40, 40]
    assert "block means" in lab.status
    lab.set_query(450)
    assert lab.detail.shape == [1, 100, 100] and "window" in lab.detail.titles[0]
    assert lab.head_view.offset <= 450 < lab.head_view.offset + lab.head_view.shape[1]
    lab.grid.clicked_cell = [0, 0]  # click top-left of a thumbnail: window moves to the start
    assert lab.query < 15 and lab.frame("head")["query"].min() == 0
    assert lab.bytes_sent < 2_000_000  # 600² × 6 heads as float32 alone would be 8.6 MB


def test_vit_overlay_and_bad_construction():
    grid, t = (3, 4), 13
    image = np.random.default_rng(1).random((30, 40))
    lab = AttentionLab(random_attention((2, 2, t, t)), image=image, grid=grid)
    lab.tabs.selected_index = 4
    assert lab.vit_figure.outputs and lab.to_figure("vit").data
    with pytest.raises(ValueError, match="both image"):
        AttentionLab(random_attention((1, 1, 4, 4)), image=image)
    with pytest.raises(ValueError, match="sum to 1"):
        AttentionLab(np.ones((1, 1, 4, 4)))


def test_step_slider_replays_a_run_directory(tmp_path):
    from explorer.train import RunWriter, Snapshot

    writer = RunWriter(tmp_path / "run")
    for s in (0, 10, 20):
        att = {f"blocks.{i}.attn.hook_pattern": torch.from_numpy(random_attention((1, 2, 5, 5), s + i))
               for i in range(2)}  # fmt: skip
        writer.write_snapshot(Snapshot(step=s, metrics={}, attention=att))
    lab = AttentionLab(source=tmp_path / "run")
    assert lab.step == 20 and lab.shown_step == 20
    lab.show_step(10)
    assert lab.step == 10 and "step 10" in lab.grid.caption
    np.testing.assert_allclose(lab.patterns.numpy()[1, 0], random_attention((1, 2, 5, 5), 11)[0, 0])
    assert set(lab.statistics["step"]) == {10}


def test_follows_a_training_lab_live_and_after_a_task_change():
    from widgets.training import TrainingLab

    training = TrainingLab(
        "induction", model={"n_layers": 2, "n_heads": 2, "d_model": 16}, record_every=5
    )
    lab = AttentionLab(source=training, min_interval_s=0.0)
    training.step(5)
    lab.wait()
    assert lab.step == 5
    vocab = training.task.meta["vocab"]
    assert all(tok in vocab for tok in lab.patterns.tokens)
    training.configure(task="copy")  # a new run, a new vocabulary: followed, not frozen
    training.step(5)
    lab.wait()
    assert lab.patterns.shape[2] == training.task.meta["seq_len"]
    assert list(lab.patterns.tokens) == training.tokens
    lab.close()
    training.close()


def test_a_long_text_and_unknown_tokens_are_said_in_the_status_line():
    from explorer.models.hf import minilm_path

    folder = minilm_path()  # a Hugging Face model folder with a text: a source too
    lab = AttentionLab(source=(folder, "the cat sat on the mat " * 100))
    assert lab.patterns.shape[2] == 512
    assert "cut to the model's 512 tokens" in lab.status and lab.last_error is None
    lab.follow((lab.source.model, "a unicorn 🦄 and a 𓀀"))
    assert "2 unknown token(s), shown as [UNK]" in lab.status
    assert list(lab.patterns.tokens).count("[UNK]") == 2
