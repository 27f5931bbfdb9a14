"""Small, readable models with named hook points, activation capture, and pretrained loaders.

    from explorer.models import Transformer, TransformerConfig, capture
    model = Transformer(TransformerConfig(vocab_size=16, attention=["softmax", "linear"]))
    cache = capture(model, tokens, names=["blocks.*.attn.hook_pattern"])

Pretrained transformers (``load_minilm``, ``load_pretrained``) need the ``hf`` extra.
"""

from __future__ import annotations

from explorer.models.attention import VARIANTS as ATTENTION_VARIANTS
from explorer.models.grid_attention import GridAttention, circular_conv
from explorer.models.hf import PretrainedTransformer, load_minilm, load_pretrained
from explorer.models.hooks import ActivationCache, HookPoint, capture, capture_stream, hook_names
from explorer.models.inr import NeuralField
from explorer.models.layers import ACTIVATIONS, ENCODINGS
from explorer.models.matryoshka import Matryoshka, adaptive_classify, matryoshka_task
from explorer.models.mlp import MLP, MLPConfig
from explorer.models.positional import POSITIONAL
from explorer.models.registry import build_model, config_from_dict, config_to_dict, model_kind
from explorer.models.transformer import Transformer, TransformerConfig
from explorer.models.vision import CNN, CNNConfig, ConvDecoder, ConvDecoderConfig, ViT, ViTConfig

__all__ = [
    "ACTIVATIONS",
    "ATTENTION_VARIANTS",
    "CNN",
    "ENCODINGS",
    "MLP",
    "POSITIONAL",
    "ActivationCache",
    "CNNConfig",
    "ConvDecoder",
    "ConvDecoderConfig",
    "GridAttention",
    "HookPoint",
    "MLPConfig",
    "Matryoshka",
    "NeuralField",
    "PretrainedTransformer",
    "Transformer",
    "TransformerConfig",
    "ViT",
    "ViTConfig",
    "adaptive_classify",
    "build_model",
    "capture",
    "capture_stream",
    "circular_conv",
    "config_from_dict",
    "config_to_dict",
    "hook_names",
    "load_minilm",
    "load_pretrained",
    "matryoshka_task",
    "model_kind",
]
