"""Checkpoints: bit-exact round trip, optimizer state, atomic writes, clear errors."""

from __future__ import annotations

import os
import pickle
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from explorer.models import CNN, MLP, NeuralField, Transformer, ViT
from explorer.train.checkpoint import (
    CheckpointError,
    load_checkpoint,
    load_torch_weights,
    save_checkpoint,
    write_atomically,
)


def _trained(model: nn.Module, inputs: torch.Tensor) -> torch.optim.Optimizer:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, betas=(0.8, 0.95))
    for _ in range(2):
        opt.zero_grad()
        model(inputs).float().pow(2).mean().backward()
        opt.step()
    return opt


def _equal_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize(
    ("factory", "inputs"),
    [
        (
            lambda: Transformer(attention=["performer", "sliding"], pos="rope"),
            torch.randint(0, 16, (2, 6)),
        ),
        (lambda: NeuralField(encoding="learned_fourier"), torch.rand(5, 2)),
        (lambda: CNN(), torch.rand(2, 1, 8, 8)),
        (lambda: ViT(), torch.rand(2, 1, 8, 8)),
    ],
)
def test_round_trip_is_bit_exact_and_rebuilds_the_model(tmp_path, factory, inputs):
    model = factory()
    opt = _trained(model, inputs)
    path = save_checkpoint(tmp_path / "m.safetensors", model, optimizer=opt,
                           state={"step": 2, "losses": [0.5, 0.25], "note": "x"})  # fmt: skip
    ck = load_checkpoint(path)
    assert type(ck.model) is type(model)
    assert _equal_state(ck.model.state_dict(), model.state_dict())
    assert torch.equal(ck.model(inputs), model(inputs))
    assert ck.state == {"step": 2, "losses": [0.5, 0.25], "note": "x"}

    fresh = factory()
    opt2 = torch.optim.AdamW(fresh.parameters(), lr=1.0)
    load_checkpoint(path, fresh, optimizer=opt2)
    s1, s2 = opt.state_dict(), opt2.state_dict()
    assert s1["param_groups"] == s2["param_groups"]
    for idx in s1["state"]:
        assert _equal_state(s1["state"][idx], s2["state"][idx])


def test_custom_model_needs_to_be_passed(tmp_path):
    model = nn.Sequential(nn.Linear(3, 2))
    path = save_checkpoint(tmp_path / "c.safetensors", model, config={"hidden": 2})
    with pytest.raises(CheckpointError, match="cannot rebuild the model from its config"):
        load_checkpoint(path)
    path = save_checkpoint(tmp_path / "d.safetensors", model)
    with pytest.raises(CheckpointError, match="pass the model"):
        load_checkpoint(path)
    other = nn.Sequential(nn.Linear(3, 2))
    load_checkpoint(path, other)
    assert _equal_state(other.state_dict(), model.state_dict())


def test_mismatched_model_lists_differences(tmp_path):
    path = save_checkpoint(tmp_path / "m.safetensors", MLP(width=8))
    with pytest.raises(
        CheckpointError,
        match=r"shape mismatch: encoding|layers.0.linear.weight: file \(8, 2\) vs model \(16, 2\)",
    ):
        load_checkpoint(path, MLP(width=16))
    with pytest.raises(CheckpointError, match="missing from file"):
        load_checkpoint(path, MLP(width=8, depth=4))
    with pytest.raises(CheckpointError, match="holds no optimizer state"):
        m = MLP(width=8)
        load_checkpoint(path, m, optimizer=torch.optim.SGD(m.parameters(), lr=0.1))


def test_optimizer_class_mismatch(tmp_path):
    m = MLP(width=4)
    path = save_checkpoint(tmp_path / "m.safetensors", m, optimizer=_trained(m, torch.rand(3, 2)))
    with pytest.raises(CheckpointError, match="holds AdamW state but a SGD"):
        load_checkpoint(path, MLP(width=4), optimizer=torch.optim.SGD(m.parameters(), lr=0.1))


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty", "header"])
def test_corrupt_files_fail_clearly(tmp_path, damage):
    path = save_checkpoint(tmp_path / "m.safetensors", MLP(width=4))
    data = path.read_bytes()
    broken = {
        "truncate": data[: len(data) // 2],
        "garbage": b"\x00\x01not a checkpoint" * 5,
        "empty": b"",
        "header": data[:8] + data[8:].replace(b"explorer.checkpoint", b"explorer.checkpoinX", 1),
    }[damage]
    path.write_bytes(broken)
    expected = "unsupported checkpoint format" if damage == "header" else "corrupt or truncated"
    with pytest.raises(CheckpointError, match=expected):
        load_checkpoint(path)


def test_failed_save_leaves_existing_file_intact(tmp_path):
    path = save_checkpoint(tmp_path / "m.safetensors", MLP(width=4), state={"step": 1})
    before = path.read_bytes()
    with pytest.raises(TypeError, match="JSON-serialisable"):
        save_checkpoint(path, MLP(width=4), state={"bad": object()})
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]  # no temp files left


def test_bad_paths(tmp_path):
    with pytest.raises(ValueError, match=r"\.safetensors"):
        save_checkpoint(tmp_path / "m.pt", MLP())
    with pytest.raises(FileNotFoundError, match="create it first"):
        save_checkpoint(tmp_path / "nope" / "m.safetensors", MLP())
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.safetensors")


def test_plain_safetensors_file_is_not_an_explorer_checkpoint(tmp_path):
    from safetensors.torch import save_file

    save_file({"w": torch.ones(2)}, str(tmp_path / "w.safetensors"))
    with pytest.raises(CheckpointError, match="not an explorer checkpoint"):
        load_checkpoint(tmp_path / "w.safetensors")


class _Evil:
    def __reduce__(self):
        return (print, ("code ran",))


def test_torch_weights_load_only_weights(tmp_path, capsys):
    ok = tmp_path / "ok.pt"
    torch.save({"w": torch.arange(3)}, ok)
    assert torch.equal(load_torch_weights(ok)["w"], torch.arange(3))
    evil = tmp_path / "evil.pt"
    with open(evil, "wb") as f:
        pickle.dump({"w": _Evil()}, f, protocol=2)
    with pytest.raises(CheckpointError, match="weights_only=True"):
        load_torch_weights(evil)
    assert "code ran" not in capsys.readouterr().out


def test_tied_weights_save_and_reload(tmp_path):
    model = nn.Sequential(nn.Embedding(5, 3), nn.Linear(3, 5, bias=False))
    model[1].weight = model[0].weight  # tied, as in weight-tied language models
    path = save_checkpoint(tmp_path / "tied.safetensors", model)
    other = nn.Sequential(nn.Embedding(5, 3), nn.Linear(3, 5, bias=False))
    load_checkpoint(path, other)
    assert torch.equal(other[0].weight, model[0].weight)
    assert torch.equal(other[1].weight, model[1].weight)


# ------------------------------------------------------------ all-or-nothing load (issue 19)


def _craft(path, edit):  # type: ignore[no-untyped-def]
    """Rewrite a checkpoint's JSON header with ``edit(header)`` (what a crafted file holds)."""
    import json

    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(path), framework="pt") as f:
        header = json.loads(f.metadata()["explorer"])
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    edit(header)
    save_file(tensors, str(path), metadata={"explorer": json.dumps(header)})
    return path


def _snapshot(model, opt):  # type: ignore[no-untyped-def]
    import copy

    return copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict())


def _unchanged(model, opt, before) -> bool:  # type: ignore[no-untyped-def]
    weights, opt_state = before
    now = opt.state_dict()
    same_state = now["state"].keys() == opt_state["state"].keys() and all(
        _equal_state(now["state"][i], opt_state["state"][i]) for i in now["state"]
    )
    return (
        _equal_state(model.state_dict(), weights)
        and now["param_groups"] == opt_state["param_groups"]
        and same_state
    )


def _adam_checkpoint(tmp_path):  # type: ignore[no-untyped-def]
    source = MLP(width=8, seed=1)
    opt = torch.optim.Adam(source.parameters(), lr=1e-2)
    for _ in range(2):
        opt.zero_grad()
        source(torch.rand(4, 2)).pow(2).mean().backward()
        opt.step()
    return save_checkpoint(tmp_path / "adam.safetensors", source, optimizer=opt)


def _live(opt_cls=torch.optim.Adam, groups: int = 1):  # type: ignore[no-untyped-def]
    model = MLP(width=8, seed=2)
    params = list(model.parameters())
    if groups == 1:
        opt = opt_cls(params, lr=0.1)
    else:
        opt = opt_cls([{"params": params[:2]}, {"params": params[2:]}], lr=0.1)
    opt.zero_grad()
    model(torch.rand(3, 2)).pow(2).mean().backward()
    opt.step()  # live optimizer with state of its own
    return model, opt


@pytest.mark.parametrize(
    ("case", "match"),
    [
        ("sgd", "holds Adam state but a SGD"),
        ("two groups", "1 parameter group.* but the optimizer has 2"),
        ("step boom", r"'step' of parameter 0 must be a finite number, got 'boom'"),
        ("lr string", r"parameter group 0 has an invalid 'lr': 'fast'"),
        ("betas", r"invalid 'betas'"),
        ("optimizer string", "header field 'optimizer' must be a JSON object"),
        ("state shape", r"optimizer state 'optimizer.state.0.exp_avg' has shape"),
    ],
)
def test_failed_load_leaves_model_and_optimizer_exactly_as_before(tmp_path, case, match):
    path = _adam_checkpoint(tmp_path)
    edits = {
        "step boom": lambda h: h["optimizer"]["scalars"].setdefault("0", {}).update(step="boom"),
        "lr string": lambda h: h["optimizer"]["param_groups"][0].update(lr="fast"),
        "betas": lambda h: h["optimizer"]["param_groups"][0].update(betas=[0.9]),
        "optimizer string": lambda h: h.update(optimizer="x"),
    }
    if case in edits:
        _craft(path, edits[case])
    if case == "state shape":
        from safetensors import safe_open
        from safetensors.torch import load_file, save_file

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata()
        tensors = load_file(str(path))
        tensors["optimizer.state.0.exp_avg"] = torch.zeros(3, 3)
        save_file(tensors, str(path), metadata=meta)
    opt_cls = torch.optim.SGD if case == "sgd" else torch.optim.Adam
    model, opt = _live(opt_cls, groups=2 if case == "two groups" else 1)
    before = _snapshot(model, opt)
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint(path, model, optimizer=opt)
    assert _unchanged(model, opt, before)
    opt.zero_grad()
    model(torch.rand(3, 2)).pow(2).mean().backward()
    opt.step()  # the optimizer still works


def test_a_crafted_config_is_refused_before_anything_is_allocated(tmp_path, monkeypatch):
    import explorer.train.checkpoint as ck

    path = save_checkpoint(tmp_path / "m.safetensors", MLP(width=8))
    built_on = []
    real = ck.build_model

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        built_on.append(torch.get_default_device().type)
        return real(*args, **kwargs)

    monkeypatch.setattr(ck, "build_model", spy)
    _craft(path, lambda h: h["config"].update(width=200_000))
    with pytest.raises(CheckpointError, match=r"width=200000 is larger than the file could hold"):
        load_checkpoint(path)
    _craft(path, lambda h: h["config"].update(width=4096))  # under the bound: meta build only
    with pytest.raises(CheckpointError, match=r"shape mismatch"):
        load_checkpoint(path)
    assert "cpu" not in built_on  # nothing was built on a real device
    for bad, match in [
        ("a string", "header field 'config' must be a JSON object"),
        ({"kind": "mlp", "width": "wide"}, "cannot rebuild the model from its config"),
        ({"kind": "nope"}, "cannot rebuild the model from its config"),
    ]:
        _craft(path, lambda h, b=bad: h.update(config=b))
        with pytest.raises(CheckpointError, match=match):
            load_checkpoint(path)


def test_stale_temp_files_of_killed_saves_are_removed_by_the_next_save(tmp_path):
    import subprocess
    import sys

    code = (
        "import os, signal, sys, safetensors.torch as st\n"
        "from explorer.models import MLP\n"
        "from explorer.train import save_checkpoint\n"
        "real = st.save_file\n"
        "def killed(*a, **k):\n"
        "    real(*a, **k)\n"
        "    os.kill(os.getpid(), signal.SIGKILL)  # kill -9 after the temp file is written\n"
        "import explorer.train.checkpoint as ck\n"
        "ck.save_file = killed\n"
        "save_checkpoint(sys.argv[1], MLP(width=64))\n"
    )
    target = tmp_path / "m.safetensors"
    run = subprocess.run([sys.executable, "-c", code, str(target)], capture_output=True)
    assert run.returncode == -9
    temps = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert len(temps) == 1 and not target.exists()
    in_flight = tmp_path / f".m.safetensors.{os.getpid()}.abcd1234.tmp"  # a live writer's
    in_flight.write_bytes(b"being written")
    save_checkpoint(target, MLP(width=4))
    assert {p.name for p in tmp_path.iterdir()} == {"m.safetensors", in_flight.name}
    load_checkpoint(target)


def test_every_atomic_write_keeps_the_old_file_on_error_and_sweeps_dead_writers_temps(tmp_path):
    target = tmp_path / "history.parquet"
    write_atomically(target, lambda tmp: Path(tmp).write_text("old"), fsync=False)
    assert target.read_text() == "old" and target.stat().st_mode & 0o777 == 0o644

    def fails(tmp: str) -> None:
        Path(tmp).write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomically(target, fails)
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == [target.name]
    dead = 2**22 + 12345  # above pid_max's default: no such process
    stale = [
        tmp_path / f".status.json.{dead}.x1y2z3ab.tmp",  # a writer killed mid-write
        tmp_path / ".history.parquet.q9w8e7r6.tmp",  # an older writer's name, hours old
    ]
    for p in stale:
        p.write_text("junk")
    os.utime(stale[1], (time.time() - 7200, time.time() - 7200))
    fresh = tmp_path / ".history.parquet.a1b2c3d4.tmp"  # no pid and recent: maybe in flight
    live = tmp_path / f".status.json.{os.getpid()}.abcd1234.tmp"
    mine = tmp_path / "notes.json.tmp"  # not ours: never touched
    for p in (fresh, live, mine):
        p.write_text("keep")
    write_atomically(tmp_path / "status.json", lambda tmp: Path(tmp).write_text("{}"))
    assert {p.name for p in tmp_path.iterdir()} == {
        target.name,
        "status.json",
        fresh.name,
        live.name,
        mine.name,
    }
