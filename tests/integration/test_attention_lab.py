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
    lab = AttentionLab.from_model(model, ids, toks)
    assert "xp-attention-lab" in lab._dom_classes
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
    lab.table.selected = 11
    assert (lab.layer, lab.head) == (2, 3) and lab.grid.selected == 11
    for view in ("grid", "head", "head_view", "rollout", "statistics"):
        fig = lab.to_figure(view)
        assert fig.data, view
    out = lab.export(tmp_path / "head.html", "head")
    text = out.read_text()
    assert EVIL not in text and "&lt;script&gt;alert(1)" in text
    assert lab.export(tmp_path / "stats.csv", "table").read_text().startswith("layer,head")
    with pytest.raises(ValueError, match="unknown view"):
        lab.to_figure("bogus")


def test_long_sequences_are_pooled_and_windowed_and_say_so():
    t = 600
    lab = AttentionLab(random_attention((2, 3, t, t)), [EVIL] * t, thumb_size=40, window=100)
    assert lab.grid.shape == [6, 40, 40]
    assert "block means" in lab.status.value and EVIL not in lab.status.value
    lab.set_query(450)
    assert lab.detail.shape == [1, 100, 100] and "window" in lab.detail.titles[0]
    assert lab.head_view.offset <= 450 < lab.head_view.offset + lab.head_view.shape[1]
    lab.grid.clicked_cell = [0, 0]  # click top-left of a thumbnail: window moves to the start
    assert lab.query < 15 and lab._detail_window()[0] == 0
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


class FakeRecorder:
    def __init__(self, snaps):
        self._snaps = {s.step: s for s in snaps}

    @property
    def steps(self):
        return sorted(self._snaps)

    def at(self, step):
        return self._snaps[step]


def test_step_slider_replays_snapshots():
    from explorer.train.recorders import Snapshot

    snaps = [
        Snapshot(
            step=s,
            metrics={},
            attention={
                f"blocks.{i}.attn.hook_pattern": torch.from_numpy(
                    random_attention((1, 2, 5, 5), s + i)
                )
                for i in range(2)
            },
        )
        for s in (0, 10, 20)
    ]
    lab = AttentionLab(attach=FakeRecorder(snaps))
    assert lab.step == 20 and list(lab.step_slider.options) == [0, 10, 20]
    lab.step_slider.value = 10
    assert lab.step == 10 and "step 10" in lab.grid.caption
    np.testing.assert_allclose(lab.patterns.numpy()[1, 0], random_attention((1, 2, 5, 5), 11)[0, 0])
    assert set(lab.statistics["step"]) == {10}


def test_follows_a_training_lab():
    from widgets.training import TrainingLab

    training = TrainingLab(
        "induction", model={"n_layers": 2, "n_heads": 2, "d_model": 16}, record_every=5
    )
    lab = AttentionLab(attach=training)
    training.step(5)
    assert lab.step == 5 and 5 in lab.step_slider.options
    vocab = training.task.meta["vocab"]
    assert all(tok in vocab for tok in lab.patterns.tokens)
