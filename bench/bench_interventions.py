"""Interventions bench: explorer's batched all-sites activation patching vs TransformerLens's
own patching loops (``transformer_lens.patching``, one hooked forward per site) on the same
weights, and attribution through explorer vs Captum called directly.

Patching: a 2-layer, 4-head explorer Transformer (d=64, T=32, vocab 16), its weights copied into
a TransformerLens ``HookedTransformer`` (3.x: 4.0 removed the class); clean/corrupted batches of
8 sequences; metric = logit difference at the last position. Agreement = max |Δ| between our
patched metric and TransformerLens's over all sites.

Attribution: integrated gradients (64 steps) on the same transformer's token embeddings and on
all-MiniLM-L6-v2 (a sentence-similarity target), ours vs Captum's ``IntegratedGradients`` /
``LayerIntegratedGradients`` written by hand as a user would.

Run from bench/: ``python bench_interventions.py`` (needs the ``bench`` extra; ``hf`` for MiniLM).
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
os.environ.setdefault("TQDM_DISABLE", "1")  # TransformerLens's patching loops print progress bars

import warnings

import numpy as np
import torch
from _harness import Bench
from captum.attr import IntegratedGradients, LayerIntegratedGradients
from torch.nn import functional as F

from explorer import interventions as iv
from explorer.models import Transformer, TransformerConfig

warnings.filterwarnings("ignore", message=".*HookedTransformer is deprecated.*")
V, T, B, L, H, D = 16, 32, 8, 2, 4, 64


def tl_copy(model: Transformer):
    """A TransformerLens HookedTransformer holding ``model``'s weights."""
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    cfg = model.config
    dh = cfg.d_head
    tl = HookedTransformer(
        HookedTransformerConfig(
            n_layers=L, d_model=D, n_ctx=cfg.n_ctx, d_head=dh, n_heads=H, d_mlp=cfg.mlp_width,
            act_fn="gelu", d_vocab=V, normalization_type="LN", positional_embedding_type="standard",
        )
    )  # fmt: skip
    sd = {"embed.W_E": model.embed.weight, "pos_embed.W_pos": model.pos_embed,
          "ln_final.w": model.ln_final.weight, "ln_final.b": model.ln_final.bias,
          "unembed.W_U": model.unembed.weight.T, "unembed.b_U": model.unembed.bias}  # fmt: skip
    for i, blk in enumerate(model.blocks):
        p = f"blocks.{i}."
        w, b = blk.attn.W_qkv.weight, blk.attn.W_qkv.bias  # (3d, d): q, k, v; heads in order
        for j, name in enumerate("QKV"):
            sd[p + f"attn.W_{name}"] = w[j * D : (j + 1) * D].view(H, dh, D).transpose(1, 2)
            sd[p + f"attn.b_{name}"] = b[j * D : (j + 1) * D].view(H, dh)
        sd[p + "attn.W_O"] = blk.attn.W_o.weight.T.reshape(H, dh, D)
        sd[p + "attn.b_O"] = blk.attn.W_o.bias
        sd.update({p + "ln1.w": blk.ln1.weight, p + "ln1.b": blk.ln1.bias,
                   p + "ln2.w": blk.ln2.weight, p + "ln2.b": blk.ln2.bias,
                   p + "mlp.W_in": blk.mlp.W_in.weight.T, p + "mlp.b_in": blk.mlp.W_in.bias,
                   p + "mlp.W_out": blk.mlp.W_out.weight.T, p + "mlp.b_out": blk.mlp.W_out.bias})  # fmt: skip
    missing = tl.load_state_dict({k: v.detach().clone() for k, v in sd.items()}, strict=False)
    assert not missing.unexpected_keys, missing.unexpected_keys
    return tl.eval()


def patching(b: Bench) -> None:
    from transformer_lens import patching as tlp

    torch.manual_seed(0)
    model = Transformer(TransformerConfig(vocab_size=V, n_ctx=T, d_model=D, n_layers=L,
                                          n_heads=H)).eval()  # fmt: skip
    tl = tl_copy(model)
    g = torch.Generator().manual_seed(1)
    clean = torch.randint(0, V, (B, T), generator=g)
    corrupted = torch.randint(0, V, (B, T), generator=g)
    answer, wrong = clean[:, -1], corrupted[:, -1]
    with torch.no_grad():
        same = float((model(clean) - tl(clean)).abs().max())
    b.note("patching", "max |logits explorer − TransformerLens| (same weights)", same)
    rows = torch.arange(B)

    def tl_metric(logits: torch.Tensor) -> torch.Tensor:
        last = logits[:, -1]
        return (last[rows, answer] - last[rows, wrong]).mean()

    cases = [
        ("resid_pre", None, "layer × position (resid_pre)", tlp.get_act_patch_resid_pre, L * T),
        ("z", None, "layer × head (z, all positions)", tlp.get_act_patch_attn_head_out_all_pos,
         L * H),
        ("z", "head_position", "layer × head × position (z)", tlp.get_act_patch_attn_head_out_by_pos,
         L * H * T),
    ]  # fmt: skip
    for site, by, label, tl_fn, n_sites in cases:
        ours_result: list = []
        peer_result: list = []

        def ours(site=site, by=by, out=ours_result):
            out[:] = [iv.patching_sweep(model, clean, corrupted, site, by=by, answer=answer,
                                        wrong=wrong)]  # fmt: skip

        def peer(tl_fn=tl_fn, out=peer_result):
            with torch.no_grad():
                _, cache = tl.run_with_cache(clean)
                out[:] = [tl_fn(tl, corrupted, cache, tl_metric)]

        row = b.time(f"patching sweep {label}", ours, peer, peer_name="TransformerLens patching loop",
                     repeat=7 if n_sites <= 64 else 3)  # 256 TL forwards: ~10 s a run  # fmt: skip
        frame, tl_values = ours_result[0], peer_result[0]
        if by == "head_position":  # TL: (layer, pos, head); ours: rows (layer, head, position)
            mine = frame.sort_values(["layer", "position", "head"]).value.to_numpy()
        else:
            mine = frame.value.to_numpy()
        diff = float(np.abs(mine - tl_values.detach().numpy().ravel()).max())
        b.note(row["case"], "forward passes ours / TransformerLens",
               f"{frame.attrs['forwards']} / {n_sites + 1}")  # fmt: skip
        b.summary(row, size=f"{n_sites} sites, B={B}, T={T}, 2 layers × 4 heads, d={D}",
                  agreement=f"max |Δ metric| {diff:.1e}")  # fmt: skip

    # what batching buys, without TransformerLens: explorer's own single-site patch in a loop
    def loop():
        for layer in range(L):
            for p in range(T):
                iv.patch(model, clean, corrupted, f"blocks.{layer}.hook_resid_pre", position=p)

    row = b.time("patching: explorer patch() per site (loop)", loop, repeat=3)
    b.note(row["case"], "sites", L * T)


def attribution(b: Bench) -> None:
    torch.manual_seed(0)
    model = Transformer(TransformerConfig(vocab_size=V, n_ctx=T, d_model=D, n_layers=L,
                                          n_heads=H)).eval()  # fmt: skip
    x = torch.randint(0, V, (B, T), generator=torch.Generator().manual_seed(2))
    emb = model.embed(x).detach()

    def from_embeddings(e: torch.Tensor) -> torch.Tensor:
        return model.unembed(model.run_blocks(e + model.pos_embed[: e.shape[1]]))[:, -1, 3]

    got: list = []
    ref: list = []
    row = b.time(
        "integrated gradients, explorer transformer tokens",
        lambda: got.__setitem__(slice(None), [iv.attribute(model, x, target=3, n_steps=64)]),
        lambda: ref.__setitem__(slice(None), [IntegratedGradients(from_embeddings).attribute(
            emb, baselines=torch.zeros_like(emb), n_steps=64)]),
        peer_name="Captum IntegratedGradients (hand-written forward)", repeat=7,
    )  # fmt: skip
    diff = float(np.abs(got[0].raw - ref[0].detach().numpy()).max())
    b.summary(row, size=f"B={B}, T={T}, 64 steps", agreement=f"max |Δ attr| {diff:.1e}")
    try:
        from explorer.models import load_minilm

        lm = load_minilm()
    except ImportError as err:
        print(f"  MiniLM skipped: {err}")
        return
    text, other = "A man is playing a guitar on stage tonight.", "Someone performs music live."
    with torch.no_grad():
        anchor = lm(other).last_hidden_state.mean(1)

    def similarity(out) -> torch.Tensor:
        return F.cosine_similarity(out.last_hidden_state.mean(1), anchor, dim=-1)

    enc = lm.encode(text)
    ids, mask = enc["input_ids"], enc["attention_mask"]
    special = torch.tensor(lm.tokenizer.all_special_ids)
    base_ids = torch.where(torch.isin(ids, special), ids, lm.tokenizer.pad_token_id)

    def forward_ids(i: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        return similarity(lm.model(input_ids=i, attention_mask=m))

    lig = LayerIntegratedGradients(forward_ids, lm.model.get_input_embeddings())
    got, ref = [], []
    row = b.time(
        "integrated gradients, MiniLM word embeddings",
        lambda: got.__setitem__(slice(None), [iv.attribute(lm, text, target=similarity)]),
        lambda: ref.__setitem__(slice(None), [lig.attribute(
            ids, baselines=base_ids, additional_forward_args=(mask,), n_steps=64)]),
        peer_name="Captum LayerIntegratedGradients", repeat=5,
    )  # fmt: skip
    diff = float(np.abs(got[0].raw - ref[0].detach().numpy()).max())
    err = float(got[0].completeness()[0])
    b.summary(row, size=f"T={ids.shape[1]}, 64 steps",
              agreement=f"max |Δ attr| {diff:.1e}; completeness error {err:.1e}")  # fmt: skip


def main() -> None:
    torch.set_num_threads(2)
    b = Bench("interventions")
    patching(b)
    attribution(b)
    b.report()


if __name__ == "__main__":
    main()
