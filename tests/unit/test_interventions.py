"""Interventions on explorer's Transformer against a hand-written float64 reference forward.

Every edit (ablation, patch, steering) is applied inside :func:`reference_forward` by plain
tensor code at the named point; the library's hooked forward must agree to 1e-6.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
import torch
from torch.nn import functional as F

from explorer import interventions as iv
from explorer.errors import ExplorerWarning
from explorer.models import Transformer, TransformerConfig

Edit = Callable[[str, torch.Tensor], torch.Tensor]
B, T, V, L, H, D = 6, 12, 16, 2, 4, 32


@pytest.fixture(scope="module")
def model() -> Transformer:
    torch.manual_seed(0)
    m = Transformer(TransformerConfig(vocab_size=V, n_ctx=32, d_model=D, n_layers=L, n_heads=H))
    with torch.no_grad():  # larger-than-init weights so that every path matters
        for p in m.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return m.double().eval()


@pytest.fixture(scope="module")
def tokens() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randint(0, V, (B, T), generator=g), torch.randint(0, V, (B, T), generator=g)


def _ln(x: torch.Tensor, ln: torch.nn.LayerNorm) -> torch.Tensor:
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + ln.eps) * ln.weight + ln.bias


def reference_forward(m: Transformer, x: torch.Tensor, edit: Edit | None = None):
    """Pre-LN causal transformer written out; ``edit(name, act)`` at each hook name.
    Returns (logits, {name: activation})."""
    seen: dict[str, torch.Tensor] = {}

    def at(name: str, act: torch.Tensor) -> torch.Tensor:
        act = edit(name, act) if edit is not None else act
        seen[name] = act
        return act

    b, t = x.shape
    dh = D // H
    with torch.no_grad():
        s = m.embed.weight[x] + m.pos_embed[:t]
        for i, blk in enumerate(m.blocks):
            p = f"blocks.{i}."
            s = at(p + "hook_resid_pre", s)
            qkv = _ln(s, blk.ln1) @ blk.attn.W_qkv.weight.T + blk.attn.W_qkv.bias
            q, k, v = (qkv[..., j * D : (j + 1) * D].view(b, t, H, dh).transpose(1, 2)
                       for j in range(3))  # fmt: skip
            scores = q @ k.transpose(-1, -2) / math.sqrt(dh)
            causal = torch.ones(t, t, dtype=torch.bool).tril()
            pattern = scores.masked_fill(~causal, -math.inf).softmax(-1)
            z = at(p + "attn.hook_z", pattern @ v)  # (B, H, T, dh)
            attn = z.transpose(1, 2).reshape(b, t, D) @ blk.attn.W_o.weight.T + blk.attn.W_o.bias
            s = at(p + "hook_resid_mid", s + at(p + "hook_attn_out", attn))
            pre = _ln(s, blk.ln2) @ blk.mlp.W_in.weight.T + blk.mlp.W_in.bias
            post = at(p + "mlp.hook_post", F.gelu(pre))
            out = at(p + "hook_mlp_out", post @ blk.mlp.W_out.weight.T + blk.mlp.W_out.bias)
            s = at(p + "hook_resid_post", s + out)
        logits = _ln(s, m.ln_final) @ m.unembed.weight.T + m.unembed.bias
    return logits, seen


def close(a: torch.Tensor, b: torch.Tensor) -> None:
    torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


def no_hooks_left(m: torch.nn.Module) -> bool:
    return all(not (mod._forward_hooks or mod._forward_pre_hooks) for mod in m.modules())


def test_reference_forward_is_the_model(model, tokens):
    close(model(tokens[0]), reference_forward(model, tokens[0])[0])


@pytest.mark.parametrize("method", ["zero", "mean", "resample"])
def test_head_ablation_matches_reference(model, tokens, method):
    x, ref_x = tokens
    _, ref_seen = reference_forward(model, ref_x)
    ref_z = ref_seen["blocks.1.attn.hook_z"]
    rows = torch.randint(0, B, (B,), generator=torch.Generator().manual_seed(7))
    value = {"zero": torch.zeros_like(ref_z), "mean": ref_z.mean(0, keepdim=True).expand_as(ref_z),
             "resample": ref_z[rows]}[method]  # fmt: skip

    def edit(name: str, act: torch.Tensor) -> torch.Tensor:
        if name == "blocks.1.attn.hook_z":
            act = act.clone()
            act[:, 2] = value[:, 2]
        return act

    out = iv.ablate(model, x, "blocks.1.attn.hook_z", head=2, method=method, reference=ref_x,
                    seed=7)  # fmt: skip
    expected = reference_forward(model, x, edit)[0]
    close(out, expected)
    assert (out - model(x)).abs().max() > 1e-3  # the head matters
    assert no_hooks_left(model)


def test_mlp_neuron_and_direction_ablations_match_reference(model, tokens):
    x, ref_x = tokens
    _, ref_seen = reference_forward(model, ref_x)
    u = torch.randn(D, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    u_hat = u / u.norm()
    mean_proj = (ref_seen["blocks.1.hook_resid_pre"] @ u_hat).mean(0)  # (T,)
    cases = {
        "mlp": (dict(site="blocks.0.hook_mlp_out"),
                lambda n, a: torch.zeros_like(a) if n == "blocks.0.hook_mlp_out" else a),
        "neurons": (dict(site="blocks.1.mlp.hook_post", neurons=[0, 5, 9], position=[-1, 3]),
                    lambda n, a: _set(a, (slice(None), [3, T - 1]), [0, 5, 9], 0.0)
                    if n == "blocks.1.mlp.hook_post" else a),
        "direction": (dict(site="blocks.1.hook_resid_pre", direction=u, method="mean"),
                      lambda n, a: a + (mean_proj - a @ u_hat)[..., None] * u_hat
                      if n == "blocks.1.hook_resid_pre" else a),
    }  # fmt: skip
    for name, (kwargs, edit) in cases.items():
        site = kwargs.pop("site")
        out = iv.ablate(model, x, site, reference=ref_x, **kwargs)
        close(out, reference_forward(model, x, edit)[0])
        assert (out - model(x)).abs().max() > 1e-4, name


def _set(a: torch.Tensor, rows_pos: tuple, neurons: list[int], value: float) -> torch.Tensor:
    a = a.clone()
    for p in rows_pos[1]:
        a[:, p, neurons] = value
    return a


def test_patch_and_steering_match_reference(model, tokens):
    clean, corrupted = tokens
    _, clean_seen = reference_forward(model, clean)
    src = clean_seen["blocks.0.attn.hook_z"]

    def patch_edit(name: str, act: torch.Tensor) -> torch.Tensor:
        if name == "blocks.0.attn.hook_z":
            act = act.clone()
            act[:, 1, 4] = src[:, 1, 4]
        return act

    out = iv.patch(model, clean, corrupted, "blocks.0.attn.hook_z", head=1, position=4)
    close(out, reference_forward(model, corrupted, patch_edit)[0])

    vec = iv.steering_vector(model, clean, corrupted, "blocks.0.hook_resid_post")
    a = reference_forward(model, clean)[1]["blocks.0.hook_resid_post"]
    c = reference_forward(model, corrupted)[1]["blocks.0.hook_resid_post"]
    close(vec, a.reshape(-1, D).mean(0) - c.reshape(-1, D).mean(0))

    def steer_edit(name: str, act: torch.Tensor) -> torch.Tensor:
        if name == "blocks.0.hook_resid_post":
            act = act.clone()
            act[:, -1] += 3.0 * vec
        return act

    out = iv.steer(model, corrupted, "blocks.0.hook_resid_post", vec, 3.0, position=-1)
    close(out, reference_forward(model, corrupted, steer_edit)[0])

    head_vec = iv.steering_vector(model, clean, corrupted, "blocks.0.attn.hook_z", head=1)
    z = clean_seen["blocks.0.attn.hook_z"][:, 1]
    zc = reference_forward(model, corrupted)[1]["blocks.0.attn.hook_z"][:, 1]
    close(head_vec, z.reshape(-1, z.shape[-1]).mean(0) - zc.reshape(-1, z.shape[-1]).mean(0))


def test_patching_sweep_is_batched_and_equals_single_site_patches(model, tokens):
    """2 layers, 4 heads, T = 32: one batched forward per layer (plus clean and corrupted)."""
    g = torch.Generator().manual_seed(5)
    clean, corrupted = (
        torch.randint(0, V, (3, 32), generator=g),
        torch.randint(0, V, (3, 32), generator=g),
    )
    answer, wrong = clean[:, -1], corrupted[:, -1]
    calls: list[int] = []
    handle = model.register_forward_pre_hook(lambda _m, args: calls.append(args[0].shape[0]))
    try:
        frames = {}
        for site in ("resid_pre", "z"):
            calls.clear()
            frames[site] = iv.patching_sweep(model, clean, corrupted, site, answer=answer,
                                             wrong=wrong)  # fmt: skip
            n_sites = 32 if site == "resid_pre" else H
            assert calls == [3, 3, 3 * n_sites, 3 * n_sites], calls
            assert frames[site].attrs["forwards"] == 2 + L
    finally:
        handle.remove()
    read = iv.metric_fn("logit_diff", answer=answer, wrong=wrong)
    pos = frames["resid_pre"]
    assert list(pos.columns) == ["layer", "position", "site", "metric", "value", "restored"]
    assert len(pos) == L * 32
    for row in pos.sample(12, random_state=0).itertuples():
        out = iv.patch(model, clean, corrupted, row.site, position=row.position)
        assert abs(float(read(out).mean()) - row.value) < 1e-6
    heads = frames["z"]
    for row in heads.itertuples():
        out = iv.patch(model, clean, corrupted, row.site, head=row.head)
        assert abs(float(read(out).mean()) - row.value) < 1e-6
    # patching the whole stream before layer 0 at every position restores the clean run
    clean_v, corr_v = pos.attrs["clean"], pos.attrs["corrupted"]
    assert clean_v == pytest.approx(float(read(model(clean).detach()).mean()), abs=1e-9)
    full = iv.patch(model, clean, corrupted, "blocks.0.hook_resid_pre")
    assert float(read(full).mean()) == pytest.approx(clean_v, abs=1e-9)
    np.testing.assert_allclose(pos["restored"], (pos["value"] - corr_v) / (clean_v - corr_v))


def test_sweep_by_head_position_and_chunking(model, tokens):
    clean, corrupted = tokens
    f = iv.patching_sweep(model, clean, corrupted, "z", by="head_position", metric="loss",
                          targets=clean, max_rows=5 * B)  # fmt: skip
    assert len(f) == L * H * T and f.attrs["forwards"] == 2 + L * math.ceil(H * T / 5)
    one = f[(f.layer == 1) & (f["head"] == 3) & (f.position == 7)].value.item()
    out = iv.patch(model, clean, corrupted, "blocks.1.attn.hook_z", head=3, position=7)
    assert one == pytest.approx(float(iv.metric_fn("loss", targets=clean)(out).mean()), abs=1e-6)


def test_run_with_hooks_cache_and_custom_hook(model, tokens):
    x = tokens[0]
    run = iv.run_with_hooks(
        model, x, [("blocks.*.hook_mlp_out", lambda a, name: a * 0.5)],
        cache=["blocks.*.hook_mlp_out", "blocks.1.hook_resid_post"],
    )  # fmt: skip
    halve = lambda n, a: a * 0.5 if n.endswith("hook_mlp_out") else a  # noqa: E731
    logits, seen = reference_forward(model, x, halve)
    close(run.output, logits)
    assert list(run) == [
        "blocks.0.hook_mlp_out",
        "blocks.1.hook_mlp_out",
        "blocks.1.hook_resid_post",
    ]
    close(run["blocks.1.hook_mlp_out"], seen["blocks.1.hook_mlp_out"])  # the edited value
    with iv.hooked(model, [iv.Ablation("blocks.0.attn.hook_z", head=0)]):
        inside = model(x)
    assert no_hooks_left(model)
    close(inside, iv.ablate(model, x, "blocks.0.attn.hook_z", head=0))


def test_an_exception_leaves_no_hook_behind(model, tokens):
    def boom(act: torch.Tensor, name: str) -> torch.Tensor:
        raise RuntimeError("hook failed")

    with pytest.raises(RuntimeError, match="hook failed"):
        iv.run_with_hooks(model, tokens[0], [("blocks.1.hook_resid_pre", boom)],
                          cache="blocks.*.hook_resid_post")  # fmt: skip
    assert no_hooks_left(model)
    with pytest.raises(IndexError, match="out of range"):  # raised inside the forward pass
        iv.ablate(model, tokens[0], "blocks.0.attn.hook_z", head=9)
    assert no_hooks_left(model)
    with pytest.raises(KeyError), iv.hooked(model, [iv.Steering("blocks.0.hook_resid_post",
                                                               torch.ones(D))]):  # fmt: skip
        raise KeyError("user code")
    assert no_hooks_left(model)
    before = model(tokens[0])
    with pytest.raises(ValueError, match="shape"):
        iv.patching_sweep(model, tokens[0], tokens[1], "resid_pre", metric="loss",
                          targets=tokens[0][:, :3])  # fmt: skip
    assert no_hooks_left(model)
    close(model(tokens[0]), before)


def test_bad_input_says_what_to_do(model, tokens):
    x, y = tokens
    with pytest.raises(ValueError, match=r"no site 'blocks.7.hook_z'.*blocks.0.attn.hook_z"):
        iv.ablate(model, x, "blocks.7.hook_z")
    with pytest.raises(ValueError, match=r"clean has 12 tokens but corrupted 8.*align="):
        iv.patching_sweep(model, x, y[:, :8], answer=1, wrong=2)
    right = iv.patch(model, x, y[:, :8], "blocks.1.hook_resid_pre", position=-1, align="right")
    expected = iv.patch(model, x[:, -8:], y[:, :8], "blocks.1.hook_resid_pre", position=-1)
    close(right, expected)
    with pytest.raises(ValueError, match="rows"):
        iv.patch(model, x, y[:3], "blocks.1.hook_resid_pre")
    with pytest.raises(ValueError, match="no head axis"):
        iv.ablate(model, x, "blocks.0.hook_resid_post", head=1)
    with pytest.raises(ValueError, match=r"needs reference activations.*\.fit"):
        iv.run_with_hooks(model, x, [iv.Ablation("blocks.0.hook_mlp_out", "mean")])
    with pytest.raises(ValueError, match="method must be one of"):
        iv.Ablation("blocks.0.hook_mlp_out", "median")
    with pytest.raises(ValueError, match="needs wrong"):
        iv.patching_sweep(model, x, y, answer=3)
    with pytest.raises(ValueError, match="short name"):
        iv.patching_sweep(model, x, y, "blocks.0.hook_resid_pre", answer=1, wrong=2)
    with pytest.raises(ValueError, match="steering vector has 5 dims"):
        iv.steer(model, x, "blocks.0.hook_resid_post", torch.ones(5))
    assert no_hooks_left(model)


def test_ablating_the_whole_model_is_allowed_but_said(model, tokens):
    x = tokens[0]
    with pytest.warns(ExplorerWarning, match="whole residual stream"):
        out = iv.ablate(model, x, "blocks.1.hook_resid_pre")
    assert torch.allclose(out, out[:1, :1].expand_as(out))  # every output is the same
    everything = [iv.Ablation(f"blocks.{i}.{s}") for i in range(L)
                  for s in ("attn.hook_z", "hook_mlp_out")]  # fmt: skip
    with pytest.warns(ExplorerWarning, match=f"every attention head and MLP of all {L} layers"):
        iv.run_with_hooks(model, x, everything)
    # part of the stream, or all heads of one layer, is not the whole model: no warning
    iv.run_with_hooks(model, x, [iv.Ablation("blocks.1.hook_resid_pre", position=0),
                                 *everything[:3]])  # fmt: skip


def test_metrics_by_hand():
    logits = torch.tensor([[[1.0, 2.0, 0.0], [0.0, 3.0, 1.0]], [[2.0, 0.0, 0.0], [1.0, 1.0, 5.0]]])
    lp = logits.log_softmax(-1)
    assert iv.metric_fn("logit_diff", answer=1, wrong=2)(logits).tolist() == [2.0, -4.0]
    ld = iv.metric_fn("logit_diff", answer=[1, 0], wrong=[0, 2], position=[0, 1])(logits)
    assert ld.tolist() == [1.0, -4.0]
    prob = iv.metric_fn("probability", answer=2)(logits)
    close(prob, lp[:, -1, 2].exp())
    targets = torch.tensor([[1, -100], [0, 1]])
    loss = iv.metric_fn("loss", targets=targets)(logits)
    close(loss, torch.stack([-lp[0, 0, 1], -(lp[1, 0, 0] + lp[1, 1, 1]) / 2]))
    acc = iv.metric_fn("accuracy", targets=targets)(logits)
    assert acc.tolist() == [1.0, 0.5]
    with pytest.raises(TypeError, match="without logits"):
        iv.metric_fn("loss", targets=targets)({"hidden": 1})


def test_logit_lens_reads_every_layer_and_ends_at_the_logits(model, tokens):
    x = tokens[0]
    frame = iv.logit_lens(model, x, target=3, top_k=4, row=2)
    assert frame.attrs["n_layers"] == L
    _, seen = reference_forward(model, x)
    streams = [seen["blocks.0.hook_resid_pre"]] + [
        seen[f"blocks.{i}.hook_resid_post"] for i in range(L)
    ]
    for layer, s in enumerate(streams):
        with torch.no_grad():
            p = _ln(s[2], model.ln_final) @ model.unembed.weight.T + model.unembed.bias
        p = p.softmax(-1)
        got = frame[frame.layer == layer]
        top = got[got["rank"] == 1].sort_values("position")
        assert top.token_id.tolist() == p.argmax(-1).tolist()
        target = got[got.is_target].sort_values("position")
        assert len(target) == T
        np.testing.assert_allclose(target.probability, p[:, 3].numpy(), atol=1e-6)
        np.testing.assert_array_equal(target["rank"], (p > p[:, 3:4]).sum(-1).numpy() + 1)
    last = frame[(frame.layer == L) & (frame["rank"] == 1)].sort_values("position")
    assert last.token_id.tolist() == model(x)[2].argmax(-1).tolist()
    named = iv.logit_lens(model, x, vocab=[f"<t{i}>" for i in range(V)], top_k=1)
    assert named.token.str.startswith("<t").all() and named["input"].iloc[0] == f"<t{int(x[0, 0])}>"


def test_tuned_lens_beats_the_logit_lens_on_its_text(model, tokens):
    x = torch.cat(tokens)
    tuned = iv.TunedLens(steps=150, lr=2e-2).fit(model, x)
    assert tuned.translators_.shape == (L, D, D)
    assert (tuned.loss_ < 0.7 * tuned.logit_lens_loss_).all(), (tuned.loss_, tuned.logit_lens_loss_)
    np.testing.assert_allclose(iv.lens_divergence(model, x, lens=tuned), tuned.loss_, rtol=1e-9)
    np.testing.assert_allclose(iv.lens_divergence(model, x), tuned.logit_lens_loss_, rtol=1e-9)
    plain = iv.logit_lens(model, x, top_k=2)
    tuned.translators_.zero_(), tuned.biases_.zero_()
    identity = iv.logit_lens(model, x, top_k=2, lens=tuned)
    pd.testing.assert_frame_equal(
        plain.drop(columns="probability"), identity.drop(columns="probability")
    )
    with pytest.raises(ValueError, match="not fitted"):
        iv.TunedLens().translate(torch.zeros(3, 1, 2, D))
    assert all(p.requires_grad for p in model.parameters())
