"""Attention analysis: head statistics, rollout, flow, ViT maps, token mixing, bad input."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from explorer.analysis import attention as A


def random_attention(rng: np.random.Generator, shape: tuple[int, ...], sharp: float = 3.0):
    x = rng.random(shape) ** sharp + 1e-6
    return x / x.sum(-1, keepdims=True)


def stats_oracle(p: np.ndarray, dist: np.ndarray, ind: np.ndarray) -> dict[str, np.ndarray]:
    """Plain numpy float64 definitions (independent of the kernel and the torch twin)."""
    p = p.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        plogp = np.where(p > 0, p * np.log(p), 0.0)
    t = p.shape[-1]
    rows = [i for i in range(t) if ind[i].any()]
    return {
        "entropy": -plogp.sum(-1).mean(-1),
        "distance": (p * dist).sum(-1).mean(-1),
        "max_weight": p.max(-1).mean(-1),
        "diagonal": np.einsum("lhii->lhi", p).mean(-1),
        "previous_token": np.stack([p[..., i, i - 1] for i in range(1, t)], -1).mean(-1),
        "first_token": p[..., 1:, 0].mean(-1),
        "induction": np.stack([(p[..., i, :] * ind[i]).sum(-1) for i in rows], -1).mean(-1),
    }


def pivot(df):
    return {
        m: g.pivot(index="layer", columns="head", values="value").to_numpy()
        for m, g in df.groupby("metric")
    }


# ---------------------------------------------------------------- input handling


def test_inputs_from_cache_list_and_array_agree():
    rng = np.random.default_rng(0)
    a = random_attention(rng, (3, 2, 5, 5))
    cache = {f"blocks.{i}.attn.hook_pattern": torch.from_numpy(a[i][None]) for i in (2, 0, 1)}
    cache["blocks.0.hook_resid_post"] = torch.zeros(1, 5, 4)
    from_cache = A.as_patterns(cache, list("abcde"))
    from_list = A.as_patterns([torch.from_numpy(x[None]) for x in a])
    from_5d = A.as_patterns(a[:, None])
    np.testing.assert_allclose(from_cache.numpy(), a)
    np.testing.assert_allclose(from_list.numpy(), a)
    np.testing.assert_allclose(from_5d.numpy(), a)
    assert from_cache.tokens == tuple("abcde")
    assert from_list.tokens == tuple("01234")
    assert A.as_patterns(a[0, 0]).shape == (1, 1, 5)


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (np.ones((2, 2, 2, 3, 4, 4)) / 4, "must be"),
        (np.ones((1, 1, 3, 4)) / 4, "square"),
        (np.full((1, 1, 3, 3), np.nan), "non-finite"),
        (np.full((1, 1, 3, 3), 2.0), "sum to 1"),
        (np.array([[[[1.5, -0.5], [0.5, 0.5]]]]), "negative"),
        ({"blocks.0.mlp.hook_post": np.eye(3)}, "hook_pattern"),
        ([np.eye(3)[None], np.eye(4)[None]], "different shapes"),
        (["not", "numbers"], "numeric|must be"),
    ],
)
def test_bad_input_raises_clear_errors(bad, match):
    with pytest.raises((ValueError, TypeError), match=match):
        A.as_patterns(bad)


def test_token_count_must_match():
    with pytest.raises(ValueError, match="3 tokens for attention over T=4"):
        A.head_statistics(np.eye(4)[None, None], tokens=["a", "b", "c"])


def test_scores_instead_of_probabilities_is_caught_with_location():
    a = np.tile(np.eye(3) / 1.0, (2, 2, 1, 1))
    a[1, 0, 2] = [0.2, 0.2, 0.2]
    with pytest.raises(ValueError, match=r"layer 1 head 0 query 2 sums to 0\.6"):
        A.as_patterns(a)


# ---------------------------------------------------------------- head statistics


@pytest.mark.kernels
def test_constructed_heads_score_exactly():
    t = 6
    prev = np.zeros((t, t))
    prev[0, 0] = 1
    prev[np.arange(1, t), np.arange(t - 1)] = 1
    first = np.zeros((t, t))
    first[:, 0] = 1
    diag = np.eye(t)
    uniform = np.full((t, t), 1 / t)
    df = A.head_statistics(np.stack([prev, first, diag, uniform])[None])
    s = pivot(df)
    np.testing.assert_allclose(s["previous_token"][0], [1, 1 / (t - 1), 0, 1 / t])
    np.testing.assert_allclose(s["first_token"][0], [1 / (t - 1), 1, 0, 1 / t], atol=1e-15)
    np.testing.assert_allclose(s["diagonal"][0], [1 / t, 1 / t, 1, 1 / t])
    np.testing.assert_allclose(s["entropy"][0], [0, 0, 0, np.log(t)], atol=1e-12)
    np.testing.assert_allclose(s["max_weight"][0], [1, 1, 1, 1 / t])
    np.testing.assert_allclose(s["distance"][0, :3], [(t - 1) / t, sum(range(t)) / t, 0])
    assert "induction" not in s  # no repeated tokens, no induction score
    assert list(df.columns) == ["layer", "head", "metric", "value"]


@pytest.mark.kernels
def test_pure_induction_head_scores_one_on_repeated_tokens():
    seq = ["<bos>", "x", "q", "m", "z", "x", "q", "m", "z"]
    ind = A.induction_targets(seq)
    p = np.eye(len(seq))
    for i in range(len(seq)):
        if ind[i].any():
            p[i] = ind[i] / ind[i].sum()
    df = A.head_statistics(p[None, None], seq, step=7)
    s = df.set_index("metric")["value"]
    assert s["induction"] == pytest.approx(1.0)
    assert set(df["step"]) == {7}
    # the target is one after the previous occurrence: offset −(period − 1) = −3
    assert ind[5, 2] and ind[8, 5] and ind.sum() == 4


@pytest.mark.kernels
def test_kernel_matches_numpy_oracle_and_torch_twin():
    rng = np.random.default_rng(1)
    toks = list("abcabcab")
    p = random_attention(rng, (2, 3, 8, 8)).astype(np.float32)
    df = A.head_statistics(p, toks, device="cpu")
    got = pivot(df)
    dist = np.abs(np.arange(8)[:, None] - np.arange(8)[None, :]).astype(np.float64)
    ind = A.induction_targets(toks)
    expect = stats_oracle(p, dist, ind)
    twin = A._stats_torch(torch.from_numpy(p), torch.from_numpy(dist), torch.from_numpy(ind))
    for k, name in enumerate(A.DEFAULT_METRICS):
        np.testing.assert_allclose(got[name], expect[name], rtol=1e-6, err_msg=name)
        np.testing.assert_allclose(twin[..., k].numpy(), expect[name], rtol=1e-6, err_msg=name)


def test_effective_rank_and_patch_distances():
    t = 5
    df = A.head_statistics(
        np.stack([np.eye(t), np.full((t, t), 1 / t)])[None],
        metrics=["effective_rank", "distance"],
        positions=np.arange(t) * 2.0,
    )
    s = pivot(df)
    np.testing.assert_allclose(s["effective_rank"][0], [t, 1.0], rtol=1e-9)
    assert s["distance"][0, 0] == 0
    assert s["distance"][0, 1] == pytest.approx(
        2 * np.abs(np.subtract.outer(range(t), range(t))).mean()
    )
    pos = A.patch_positions((2, 2))
    assert np.isnan(pos[0]).all() and pos[1:].tolist() == [[0, 0], [0, 1], [1, 0], [1, 1]]
    with pytest.raises(ValueError, match="unknown metric"):
        A.head_statistics(np.eye(3)[None, None], metrics=["bogus"])


@settings(max_examples=25, deadline=None)
@given(t=st.integers(1, 7), heads=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_statistics_stay_in_range_for_any_valid_attention(t, heads, seed):
    p = random_attention(np.random.default_rng(seed), (1, heads, t, t), sharp=8.0)
    s = pivot(A.head_statistics(p))
    assert np.all((s["entropy"] >= -1e-12) & (s["entropy"] <= np.log(t) + 1e-9))
    for name in ("max_weight", "diagonal"):
        assert np.all((s[name] > 0) & (s[name] <= 1 + 1e-9))
    if t == 1:
        assert np.isnan(s["previous_token"]).all()


def test_over_steps_adds_step_column():
    snaps = [(0, np.full((1, 1, 3, 3), 1 / 3)), (10, np.eye(3)[None, None])]
    df = A.head_statistics_over_steps(snaps)
    ent = df[df.metric == "entropy"].set_index("step")["value"]
    assert ent[0] == pytest.approx(np.log(3)) and ent[10] == pytest.approx(0)
    with pytest.raises(ValueError, match="no snapshots"):
        A.head_statistics_over_steps([])


# ---------------------------------------------------------------- rollout and flow


def test_rollout_matches_hand_computation():
    rng = np.random.default_rng(2)
    a = random_attention(rng, (3, 2, 4, 4))
    mix = [0.5 * np.eye(4) + 0.5 * a[lay].mean(0) for lay in range(3)]
    roll = A.attention_rollout(a)
    np.testing.assert_allclose(roll[0], mix[0])
    np.testing.assert_allclose(roll[2], mix[2] @ mix[1] @ mix[0])
    np.testing.assert_allclose(roll.sum(-1), 1.0)
    raw = A.attention_rollout(a, residual=0.0, head_reduce="max")
    m0 = a[0].max(0)
    np.testing.assert_allclose(raw[0], m0 / m0.sum(-1, keepdims=True))


def test_rollout_torch_input_matches_numpy():
    a = random_attention(np.random.default_rng(3), (4, 3, 6, 6))
    np.testing.assert_allclose(
        A.attention_rollout(torch.from_numpy(a).float()), A.attention_rollout(a), atol=1e-6
    )


@pytest.mark.kernels
def test_flow_one_and_two_layers_hand_computed():
    a = random_attention(np.random.default_rng(4), (2, 2, 4, 4))
    mix = A.mixing_matrices(a)
    one = A.attention_flow(a, layer=0)
    np.testing.assert_allclose(one, mix[0], atol=1e-12)  # one layer: the edge itself
    two = A.attention_flow(a)
    # two layers: independent paths s → m → t, each carrying min(capacity in, capacity out)
    expect = np.array(
        [[np.minimum(mix[0][:, s], mix[1][t]).sum() for s in range(4)] for t in range(4)]
    )
    np.testing.assert_allclose(two, expect, atol=1e-12)


@pytest.mark.kernels
def test_flow_matches_networkx_max_flow():
    a = random_attention(np.random.default_rng(5), (3, 2, 4, 4), sharp=6.0)
    mix = A.mixing_matrices(a, residual=0.3)
    g = nx.DiGraph()
    for k in range(3):
        for i in range(4):
            for j in range(4):
                g.add_edge((k, j), (k + 1, i), capacity=mix[k, i, j])
    expect = [[nx.maximum_flow_value(g, (0, s), (3, t)) for s in range(4)] for t in (1, 3)]
    got = A.attention_flow(a, queries=[1, -1], residual=0.3, threads=1)
    np.testing.assert_allclose(got, expect, atol=1e-10)


def test_flow_bounds_and_bad_arguments():
    a = random_attention(np.random.default_rng(6), (3, 2, 5, 5))
    f = A.attention_flow(a, queries=2)
    assert f.shape == (1, 5) and np.all(f >= 0) and np.all(f <= 1 + 1e-12)
    with pytest.raises(ValueError, match="queries"):
        A.attention_flow(a, queries=[5])
    with pytest.raises(ValueError, match="layer=3"):
        A.attention_flow(a, layer=3)
    with pytest.raises(ValueError, match="residual"):
        A.attention_rollout(a, residual=1.5)
    with pytest.raises(ValueError, match="head_reduce"):
        A.attention_rollout(a, head_reduce="median")  # type: ignore[arg-type]


# ---------------------------------------------------------------- ViT and mixing


def test_vit_map_puts_cls_attention_on_the_grid():
    gh, gw = 2, 3
    t = 1 + gh * gw
    p = np.full((2, 2, t, t), 1 / t)
    p[-1, :, 0] = 0
    p[-1, :, 0, 1 + 4] = 1.0  # CLS looks at patch (1, 1)
    heat = A.vit_attention_map(p, (gh, gw))
    assert heat.shape == (2, 3) and heat[1, 1] == 1.0 and heat.sum() == 1.0
    big = A.vit_attention_map(p, (gh, gw), image_size=(20, 30))
    assert big.shape == (20, 30) and np.unravel_index(big.argmax(), big.shape)[0] >= 10
    roll = A.vit_attention_map(p, (gh, gw), method="rollout")
    assert roll.argmax() == 4
    with pytest.raises(ValueError, match="grid 2×2"):
        A.vit_attention_map(p, (2, 2))


def test_token_mixing_of_linear_mixer_is_normalised_abs_weights():
    w = torch.tensor([[1.0, -1.0, 0.0], [0.0, 2.0, 0.0], [0.5, 0.5, 1.0]])
    x = torch.randn(3, 4)
    m = A.token_mixing(lambda z: w @ z, x)
    expect = w.abs().numpy() / w.abs().sum(-1, keepdims=True).numpy()
    np.testing.assert_allclose(m, expect, rtol=1e-6)
    np.testing.assert_allclose(A.token_mixing(lambda z: z * 2, x[None]), np.eye(3))
    with pytest.raises(ValueError, match=r"\(T, d\)"):
        A.token_mixing(lambda z: z, torch.zeros(2, 2, 2, 2))


def test_pool_maps_keeps_block_means_and_small_maps():
    x = np.arange(2 * 10 * 7, dtype=np.float64).reshape(2, 10, 7)
    small = A.pool_maps(x, 16)
    np.testing.assert_array_equal(small, x.astype(np.float32))
    pooled = A.pool_maps(x, 5)
    assert pooled.shape == (2, 5, 5) and pooled.dtype == np.float32
    np.testing.assert_allclose(pooled[0, 0, 0], x[0, :2, :1].mean())
    rows = A.pool_maps(np.ones((513, 513)) / 513, 48)
    np.testing.assert_allclose(rows, 1 / 513, rtol=1e-6)
