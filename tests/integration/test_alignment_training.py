"""AlignmentLab attached to a live TrainingLab; representations of real models."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from explorer.analysis.alignment.models import model_representations
from explorer.models import CNN, MLP, CNNConfig, MLPConfig, Transformer, TransformerConfig
from explorer.models.observe import default_layers, model_at
from widgets.alignment import AlignmentLab
from widgets.training import TrainingLab


def test_default_layers_per_architecture():
    mlp = MLP(MLPConfig(in_dim=2, out_dim=2, depth=3, width=8))
    assert default_layers(mlp) == [
        "hook_encoded",
        "layers.0.hook_post",
        "layers.1.hook_post",
        "layers.2.hook_post",
    ]
    tf = Transformer(TransformerConfig(vocab_size=7, n_ctx=5, d_model=16, n_layers=2, n_heads=2))
    assert default_layers(tf) == [
        "blocks.0.hook_resid_pre",
        "blocks.0.hook_resid_post",
        "blocks.1.hook_resid_post",
    ]
    reps = model_representations(tf, torch.randint(0, 7, (10, 5)))
    assert list(reps) == ["embed", "L0", "L1"] and reps["L1"].shape == (10, 16)
    cnn = CNN(CNNConfig())
    reps = model_representations(cnn, torch.randn(6, 1, 8, 8), pool="mean")
    assert [r.shape[0] for r in reps.values()] == [6] * len(reps)


def test_model_at_restores_snapshot_params():
    mlp = MLP(MLPConfig(in_dim=2, out_dim=2, depth=2, width=8, seed=0))
    other = MLP(MLPConfig(in_dim=2, out_dim=2, depth=2, width=8, seed=1))
    clone = model_at(mlp, dict(other.named_parameters()))
    x = torch.randn(5, 2)
    torch.testing.assert_close(clone(x), other(x))
    with pytest.raises(ValueError, match="lack"):
        model_at(mlp, {})


def test_lab_follows_training_checkpoints_and_seeds(tmp_path):
    tl = TrainingLab("spirals", record_every=10, model={"depth": 3, "width": 16}, out_dir=tmp_path)
    tl.step(30)
    lab = AlignmentLab(source=tl, n_inputs=128, min_interval_s=0.0)
    sel = lab.selection
    assert lab.models == ["live", "checkpoint"] and (sel["rows"], sel["cols"]) == (
        "live",
        "checkpoint",
    )
    assert sel["step"] == 30 and sel["compare_step"] == 0
    before = lab.matrix().copy()
    tl.step(20)  # the live model follows every recorded snapshot
    lab.wait()
    assert "live = step 50" in lab.status and lab.selection["step"] == 50
    assert not np.allclose(lab.matrix(), before)
    lab.compare_with(50)  # the "compare with step" slider: the live step → identical
    np.testing.assert_allclose(np.diag(lab.matrix()), 1.0, atol=1e-9)
    assert lab.status == "checkpoint = step 50"
    lab.train_seeds(wait=True)
    assert lab.models == ["live", "checkpoint", "seed 1", "seed 2"], lab.status
    lab.select(rows="seed 1", cols="seed 2")
    m = lab.matrix()
    assert m.shape == (4, 4) and np.all(np.isfinite(m))
    assert lab.last_error is None
    # the same comparisons from the saved run, without a training lab
    path = tl.save()
    tl.close()
    replay = AlignmentLab(source=path, n_inputs=128)
    assert replay.selection["step"] == 50 and replay.models == ["live", "checkpoint"]
    np.testing.assert_allclose(replay.matrix("live", "live"), lab.matrix("live", "live"), atol=1e-6)
    replay.show_step(20)
    assert replay.selection["step"] == 20
    lab.close()
