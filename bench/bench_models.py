"""Models bench: parameters and forward times of the default models, fused vs explicit
attention, capture overhead, MiniLM capture vs a direct transformers call, checkpoint I/O.

Run from bench/: ``python bench_models.py``. Threads: torch's default (2 on the CI machine).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
from _harness import Bench

from explorer.models import (
    CNN,
    MLP,
    ConvDecoder,
    NeuralField,
    Transformer,
    TransformerConfig,
    ViT,
    capture,
)
from explorer.train import load_checkpoint, save_checkpoint


def _observed(model: torch.nn.Module) -> list:
    return [b.attn.hook_pattern.register_forward_hook(lambda *a: None) for b in model.blocks]


def main() -> None:
    b = Bench("models")
    torch.manual_seed(0)
    print(f"torch threads: {torch.get_num_threads()}")
    defaults = {
        "MLP x(1024, 2)": (MLP(), torch.rand(1024, 2)),
        "NeuralField 64x64 grid": (NeuralField(), torch.rand(4096, 2)),
        "Transformer tokens(32, 32)": (Transformer(), torch.randint(0, 16, (32, 32))),
        "CNN images(64, 1, 8, 8)": (CNN(), torch.rand(64, 1, 8, 8)),
        "ConvDecoder z(1, 32, 8, 8)": (ConvDecoder(), torch.rand(1, 32, 8, 8)),
        "ViT images(64, 1, 8, 8)": (ViT(), torch.rand(64, 1, 8, 8)),
    }
    with torch.no_grad():
        for case, (model, x) in defaults.items():
            b.time(f"forward {case}", lambda m=model, x=x: m(x), repeat=20)
            b.note(f"forward {case}", "params", sum(p.numel() for p in model.parameters()))

        for variant, t in (("softmax", 256), ("linear", 1024), ("sliding", 256)):
            cfg = TransformerConfig(vocab_size=64, n_ctx=t, d_model=128, n_heads=4,
                                    n_layers=2, attention=variant, causal=True)  # fmt: skip
            model, x = Transformer(cfg), torch.randint(0, 64, (8, t))
            case = f"{variant} attention fused vs explicit T={t}"
            fused = lambda m=model, x=x: m(x)  # noqa: E731

            def explicit(m=model, x=x):
                handles = _observed(m)
                try:
                    return m(x)
                finally:
                    for h in handles:
                        h.remove()

            b.time(case, fused, explicit, peer_name="explicit pattern", repeat=7)
            b.note(case, "max abs diff", float((fused() - explicit()).abs().max()))

        model, x = Transformer(), torch.randint(0, 16, (32, 32))
        b.time("capture 2x resid_post + pattern vs plain forward", lambda: capture(
            model, x, ["blocks.*.hook_resid_post", "blocks.*.attn.hook_pattern"]),
            lambda: model(x), peer_name="plain forward (fused)", repeat=20)  # fmt: skip

        try:
            from transformers import AutoTokenizer

            from explorer.models import load_minilm
            from explorer.models.hf import minilm_path
        except ImportError as err:
            print(f"skipping MiniLM: {err}")
        else:
            lm = load_minilm()
            text = "The quick brown fox jumps over the lazy dog. " * 6
            tok = AutoTokenizer.from_pretrained(str(minilm_path()))
            raw = lm.model  # the same weights, called directly
            enc = tok(text, return_tensors="pt")
            names = ["blocks.*.attn.hook_pattern", "blocks.*.hook_resid_post"]
            row = b.time(
                "MiniLM capture: attention patterns + residual stream",
                lambda: capture(lm, text, names),
                lambda: raw(**tok(text, return_tensors="pt"), output_attentions=True,
                            output_hidden_states=True),
                peer_name="transformers eager call", repeat=10,
            )  # fmt: skip
            got = capture(lm, text, names)
            ref = raw(**enc, output_attentions=True, output_hidden_states=True)
            diff = max(
                float((got[f"blocks.{i}.attn.hook_pattern"] - ref.attentions[i]).abs().max())
                for i in range(len(ref.attentions))
            )
            b.summary(row, size=f"T={enc['input_ids'].shape[1]} tokens",
                      agreement=f"patterns max |Δ| {diff:.0e}")  # fmt: skip

    big = Transformer(TransformerConfig(d_model=256, n_layers=4, vocab_size=512, n_ctx=128))
    n_params = sum(p.numel() for p in big.parameters())
    with tempfile.TemporaryDirectory() as d:
        ours, peer = Path(d) / "m.safetensors", Path(d) / "m.pt"
        size = f"{n_params / 1e6:.1f}M parameters"
        row = b.time("checkpoint save (safetensors, atomic)", lambda: save_checkpoint(ours, big),
                     lambda: torch.save(big.state_dict(), peer), peer_name="torch.save", repeat=5)  # fmt: skip
        mib = [f"{path.stat().st_size / 2**20:.1f}" for path in (ours, peer)]
        b.summary(row, size=size, agreement=f"file MiB {mib[0]} vs {mib[1]}")
        row = b.time("checkpoint load into the model", lambda: load_checkpoint(ours, big),
                     lambda: big.load_state_dict(torch.load(peer, weights_only=True)),
                     peer_name="torch.load(weights_only=True)", repeat=5)  # fmt: skip
        fresh = Transformer(big.config)
        load_checkpoint(ours, fresh)
        diff = max(float((p - q).abs().max()) for p, q in zip(fresh.parameters(), big.parameters()))
        b.summary(row, size=size, agreement=f"loaded parameters max |Δ| {diff:.0e}")
    b.report()


if __name__ == "__main__":
    main()
