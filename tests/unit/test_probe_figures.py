"""Figure builders of the probe lens, from real results on a tiny model: colour scales with
titles, titled axes, escaped token text, click-through data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from explorer import interventions as iv
from explorer.models import Transformer, TransformerConfig
from widgets.figures import probe as F

VOCAB = ["<script>", "a", "b&c", "d", "e", "f", "g", "h"]


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    model = Transformer(TransformerConfig(vocab_size=8, n_ctx=12, d_model=16, n_layers=2,
                                          n_heads=2)).eval()  # fmt: skip
    g = torch.Generator().manual_seed(0)
    clean, corrupted = (
        torch.randint(0, 8, (4, 10), generator=g),
        torch.randint(0, 8, (4, 10), generator=g),
    )
    clean[:, 0] = 0  # a "<script>" token in every row
    return model, clean, corrupted


def _heatmap(fig):
    (hm,) = [t for t in fig.data if t.type == "heatmap"]
    return hm


def _titled(fig, hm):
    assert hm.colorbar.title.text, "colour bar without a title"
    assert fig.layout.xaxis.title.text and fig.layout.yaxis.title.text, "axis without a title"


def test_patching_maps_by_position_head_and_both(setup):
    model, clean, corrupted = setup
    kw = dict(answer=clean[:, -1], wrong=corrupted[:, -1])
    tokens = [VOCAB[int(i)] for i in clean[0]]
    by_pos = iv.patching_sweep(model, clean, corrupted, "resid_pre", **kw)
    fig = F.patching_figure(by_pos, tokens=tokens, selected={"layer": 1, "position": 3})
    hm = _heatmap(fig)
    _titled(fig, hm)
    assert np.asarray(hm.z).shape == (2, 10) and hm.zmid == 0 and hm.zmin == -hm.zmax
    assert hm.colorbar.title.text == "restored fraction"
    assert "&lt;script&gt;" in fig.layout.xaxis.ticktext and "<script>" not in fig.to_json()
    custom = np.asarray(hm.customdata)
    assert custom[1, 3].tolist() == [1, -1, 3]  # layer, head (absent), position
    (ring,) = fig.layout.shapes
    assert (ring.x0, ring.y0) == (2.5, 0.5)
    np.testing.assert_allclose(np.asarray(hm.z)[1], by_pos[by_pos.layer == 1].restored)
    heads = iv.patching_sweep(model, clean, corrupted, "z", **kw)
    fig = F.patching_figure(heads, value="value")
    assert np.asarray(_heatmap(fig).z).shape == (2, 2)
    assert (
        fig.layout.xaxis.title.text == "head"
        and _heatmap(fig).colorbar.title.text == "patched metric"
    )
    both = iv.patching_sweep(model, clean, corrupted, "z", by="head_position", **kw)
    fig = F.patching_figure(both, selected={"layer": 0, "head": 1})
    assert np.asarray(_heatmap(fig).z).shape == (4, 10) and len(fig.layout.shapes) == 10
    assert list(fig.layout.yaxis.ticktext) == ["L0 H0", "L0 H1", "L1 H0", "L1 H1"]
    with pytest.raises(ValueError, match="value must be a column"):
        F.patching_figure(by_pos, value="nope")


def test_attribution_tokens_and_overlay(setup):
    model, clean, _ = setup
    result = iv.attribute(model, clean[:1], target=3, vocab=VOCAB)
    fig = F.attribution_tokens_figure(result.tokens[0], result.values[0], per_line=4,
                                      label="integrated gradients")  # fmt: skip
    hm = _heatmap(fig)
    _titled(fig, hm)
    z = np.asarray(hm.z, dtype=float)
    assert z.shape == (3, 4) and np.isnan(z[2, 2:]).all()  # 10 tokens in lines of 4
    np.testing.assert_allclose(z.ravel()[:10], result.values[0])
    assert hm.text[0][0] == "&lt;script&gt;" and "<script>" not in fig.to_json()
    assert hm.zmid == 0 and hm.colorbar.title.text == "integrated gradients"
    with pytest.raises(ValueError, match="tokens but"):
        F.attribution_tokens_figure(["a"], np.zeros(2))
    img = np.linspace(0, 1, 64).reshape(8, 8)
    heat = np.outer(np.linspace(-1, 2, 8), np.ones(8))
    fig = F.attribution_overlay_figure(img, heat, label="saliency")
    hm = _heatmap(fig)
    _titled(fig, hm)
    assert hm.colorbar.title.text == "saliency" and hm.zmax == pytest.approx(2.0) and hm.zmid == 0


def test_logit_lens_table(setup):
    model, clean, _ = setup
    frame = iv.logit_lens(model, clean[:1], target=2, vocab=VOCAB, top_k=3)
    fig = F.logit_lens_figure(frame)
    hm = _heatmap(fig)
    _titled(fig, hm)
    assert np.asarray(hm.z).shape == (3, 10)
    assert list(fig.layout.yaxis.ticktext) == ["embed", "block 0", "output"]
    top = frame[(frame.layer == 2) & (frame["rank"] == 1)].sort_values("position")
    np.testing.assert_allclose(np.asarray(hm.z)[2], top.probability)
    assert "target" in hm.customdata[0][0] and "<script>" not in fig.to_json()
    by_target = F.logit_lens_figure(frame, color="target")
    assert _heatmap(by_target).colorbar.title.text == "target probability"
    with pytest.raises(ValueError, match="needs a frame computed with target"):
        F.logit_lens_figure(iv.logit_lens(model, clean[:1]), color="target")


def test_output_change():
    before, after = np.array([0.5, 0.3, 0.2]), np.array([0.1, 0.1, 0.8])
    fig = F.output_change_figure(before, after, ["<b>x</b>", "y", "z"], top=2)
    assert [t.name for t in fig.data] == ["original", "intervened"]
    assert list(fig.layout.yaxis.ticktext) == ["&lt;b&gt;x&lt;/b&gt;", "z"]  # bottom to top
    assert fig.layout.xaxis.title.text == "probability"
    with pytest.raises(ValueError, match="must match"):
        F.output_change_figure(before, after[:2], ["a", "b"])
