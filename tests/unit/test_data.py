"""Task generators: deterministic per seed, labels correct by oracle, bad inputs rejected."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from explorer.data import (
    IGNORE_INDEX,
    TASKS,
    Task,
    coordinate_grid,
    image,
    load_text,
    make_task,
)
from explorer.data.toy2d import class_counts

SMALL = {
    "spirals": {"n": 60}, "moons": {"n": 60}, "circles": {"n": 60}, "xor": {"n": 60},
    "blobs": {"n": 60}, "checkerboard": {"n": 60}, "signal_1d": {"n": 32, "frequencies": (1, 3)},
    "image": {"name": "checker", "size": 8}, "image_prior": {"name": "checker", "size": 8},
    "digits": {}, "feature_pair": {"n": 40}, "shapes": {"n": 24, "size": 8},
    "modular_addition": {"p": 7}, "copy": {"n": 20}, "reverse": {"n": 20}, "sort": {"n": 20},
    "induction": {"n": 20}, "associative_recall": {"n": 20}, "majority": {"n": 20},
    "parentheses": {"n": 20}, "hierarchical": {"n": 20}, "topic_markov": {"n": 20}, "char_text": {"n": 20, "seq_len": 16},
    "repeated_segment": {"n": 20},
}  # fmt: skip
SEEDED = [k for k in TASKS if k not in ("digits", "image", "modular_addition")]


def _same(a: Task, b: Task) -> bool:
    return all(
        torch.equal(getattr(a, f), getattr(b, f))
        for f in ("x_train", "y_train", "x_test", "y_test")
    )


@pytest.mark.parametrize("name", sorted(TASKS))
def test_every_task_is_deterministic_and_well_formed(name):
    a, b = make_task(name, **SMALL[name]), make_task(name, **SMALL[name])
    assert _same(a, b)
    assert a.n_train > 0 and a.n_test > 0
    assert a.meta["loss"] in ("ce", "mse")
    assert torch.isfinite(a.x_train.float()).all()
    if a.kind == "sequence":
        assert a.x_train.dtype == torch.int64 and a.x_train.shape == a.y_train.shape
        assert int(a.x_train.max()) < a.meta["vocab_size"]
        scored = a.y_train[a.y_train != IGNORE_INDEX]
        assert scored.numel() and int(scored.max()) < a.meta["vocab_size"]
    if name in SEEDED:
        assert not _same(a, make_task(name, **SMALL[name], seed=1))


def test_class_imbalance_and_split():
    t = make_task("blobs", n=300, n_classes=3, imbalance=0.1, test_fraction=0.2)
    counts = np.bincount(np.concatenate([t.y_train.numpy(), t.y_test.numpy()]))
    assert counts.tolist() == class_counts(300, 3, 0.1)
    assert counts[0] / counts[2] == pytest.approx(10, rel=0.1)
    assert t.n_test == 60


@pytest.mark.parametrize(
    ("name", "oracle"),
    [
        ("xor", lambda x: (np.sign(x[:, 0]) != np.sign(x[:, 1])).astype(int)),
        ("checkerboard", lambda x: (np.floor((x[:, 0] + 1) * 2) + np.floor((x[:, 1] + 1) * 2)) % 2),
        ("circles", lambda x: (np.hypot(x[:, 0], x[:, 1]) > 0.75).astype(int)),
    ],
)
def test_toy_labels_match_geometry(name, oracle):
    t = make_task(name, n=400, noise=0.0)
    np.testing.assert_array_equal(oracle(t.x_train.numpy()), t.y_train.numpy())


def test_sines_spectrum_has_exactly_the_requested_frequencies():
    t = make_task("signal_1d", n=64, frequencies=(2, 5, 11), amplitudes=(1.0, 0.5, 0.25))
    y = t.meta["y_grid"][:, 0].numpy()
    power = np.abs(np.fft.rfft(y)) / 32
    np.testing.assert_allclose(power[[2, 5, 11]], [1.0, 0.5, 0.25], atol=1e-5)
    power[[2, 5, 11]] = 0
    assert power.max() < 1e-5
    # interleaved hold-out: test points are the odd grid points
    torch.testing.assert_close(t.x_test, t.meta["x_grid"][1::2])


def test_coordinate_grid_is_periodic_in_c_order():
    g = coordinate_grid((2, 4))
    assert g.shape == (8, 2)
    assert g[:, 0].tolist() == [-1.0] * 4 + [0.0] * 4
    assert g[:4, 1].tolist() == [-1.0, -0.5, 0.0, 0.5]


def test_chirp_and_steps():
    chirp = make_task("signal_1d", kind="chirp", n=256, f_start=2, f_end=40).meta["y_grid"][:, 0]
    power = np.abs(np.fft.rfft(chirp.numpy())) ** 2
    assert power[2:41].sum() > 0.9 * power.sum()
    assert power[:20].sum() > 0.2 * power.sum() and power[22:41].sum() > 0.2 * power.sum()
    steps = make_task("signal_1d", kind="steps", n=64, n_steps=5).meta["y_grid"][:, 0]
    assert len(np.unique(steps.numpy())) == 5


def test_images():
    for name in ("camera", "chelsea", "zone_plate", "disks"):
        img = image(name, size=16)
        assert img.shape == (16, 16) and img.dtype == np.float32
        assert 0.0 <= img.min() and img.max() <= 1.0
    assert image("chelsea", size=16, gray=False).shape == (16, 16, 3)
    t = make_task("image", name="astronaut", size=8, gray=False)
    assert t.kind == "image" and t.meta["shape"] == (8, 8) and t.y_train.shape[1] == 3
    assert t.n_test == 16


def test_image_prior_trains_on_the_noisy_image_and_tests_on_the_clean_one():
    t = make_task("image_prior", name="checker", size=16, noise=0.2, code_channels=4, code_size=2)
    clean = torch.from_numpy(image("checker", 16))[None, None]
    assert t.x_train.shape == (1, 4, 2, 2) and torch.equal(t.x_train, t.x_test)
    assert torch.equal(t.y_test, clean) and t.y_train.shape == clean.shape
    noise = t.y_train - clean
    assert abs(float(noise.std()) - 0.2) < 0.03 and abs(float(noise.mean())) < 0.05
    assert t.meta["noisy_mse"] == pytest.approx(float((noise**2).mean()), rel=1e-5)
    with pytest.raises(ValueError, match="noise"):
        make_task("image_prior", noise=0.0)


def test_topic_markov_follows_the_topic_chain_lag_steps_back():
    t = make_task("topic_markov", n=50, length=10, n_symbols=6, n_topics=3, branching=2, lag=2)
    x, y = t.x_train.numpy(), t.y_train.numpy()
    full = np.concatenate([x, y[:, -1:]], axis=1)  # the whole sequence
    succ = t.meta["successors"]
    n_sym = 6
    for row in full:
        topic = row[0] - n_sym
        assert 0 <= topic < 3 and (row[1:] < n_sym).all()
        for i in range(3, len(row)):
            assert row[i] in succ[topic, row[i - 2]]
    assert (y[:, :2] == IGNORE_INDEX).all() and (y[:, 2:] != IGNORE_INDEX).all()
    with pytest.raises(ValueError, match="branching"):
        make_task("topic_markov", n_symbols=3, branching=3)


def test_shapes_are_balanced_and_distinct():
    t = make_task("shapes", n=60, size=16, noise=0.0)
    y = torch.cat([t.y_train, t.y_test])
    assert torch.bincount(y).tolist() == [10] * 6
    x = torch.cat([t.x_train, t.x_test])
    assert set(torch.unique(x).tolist()) <= {0.0, 1.0}


def _answers(t: Task) -> np.ndarray:
    return t.y_train[:, t.meta["answer_start"] :].numpy()


def test_sequence_answers_by_oracle():
    t = make_task("modular_addition", p=11, train_fraction=0.4)
    x, y = t.x_train.numpy(), t.y_train.numpy()
    np.testing.assert_array_equal(y[:, 2], (x[:, 0] + x[:, 1]) % 11)
    assert (y[:, :2] == IGNORE_INDEX).all() and (x[:, 2] == 11).all()
    assert t.n_train + t.n_test == 121 and t.n_train == 121 - round(0.6 * 121)

    for name, fn in (("copy", lambda s: s), ("reverse", lambda s: s[:, ::-1]),
                     ("sort", lambda s: np.sort(s, 1))):  # fmt: skip
        t = make_task(name, n=30, length=5)
        src = t.x_train[:, :5].numpy()
        np.testing.assert_array_equal(_answers(t), fn(src))
        assert (t.y_train[:, : t.meta["answer_start"]] == IGNORE_INDEX).all()

    t = make_task("induction", n=30, length=6)
    np.testing.assert_array_equal(_answers(t), t.x_train[:, 1:6].numpy())

    t = make_task("associative_recall", n=50, n_pairs=3)
    x = t.x_train.numpy()
    for row, ans in zip(x, _answers(t)[:, 0]):
        keys, values = row[0:6:2], row[1:6:2]
        assert values[list(keys).index(row[-1])] == ans

    t = make_task("majority", n=50, length=7)
    np.testing.assert_array_equal(_answers(t)[:, 0], (t.x_train[:, :7].sum(1) > 3).numpy())


def test_parentheses_labels_by_oracle():
    t = make_task("parentheses", n=200, length=8)
    labels = []
    for row in t.x_train[:, :8].numpy():
        depth = np.cumsum(np.where(row == 0, 1, -1))
        labels.append(4 if depth[-1] == 0 and depth.min() >= 0 else 3)
    np.testing.assert_array_equal(_answers(t)[:, 0], labels)
    assert 0.3 < np.mean(np.array(labels) == 4) < 0.7


def test_hierarchical_root_is_determined_by_leaves():
    t = make_task("hierarchical", n=100, n_symbols=4, depth=3, n_rules=2)
    rules = np.array(t.meta["rules"])  # (q, rules, 2)
    parent = {(int(a), int(b)): s for s in range(4) for a, b in rules[s]}
    for row, root in zip(t.x_train[:, :8].numpy(), _answers(t)[:, 0]):
        level = list(row)
        while len(level) > 1:
            level = [parent[(level[i], level[i + 1])] for i in range(0, len(level), 2)]
        assert level[0] == root


def test_char_text_is_shifted_and_test_text_unseen():
    t = make_task("char_text", seq_len=16, n=50)
    torch.testing.assert_close(t.x_train[:, 1:], t.y_train[:, :-1])
    text = load_text()
    vocab = t.meta["vocab"]
    first = "".join(vocab[i] for i in t.x_test[0].tolist())
    assert text.index(first) >= int(len(text) * 0.9) - 1


def test_task_batches_cover_every_row_once():
    t = make_task("moons", n=50)
    xs = [x for x, _ in t.batches(8, seed=3)]
    full, rest = divmod(t.n_train, 8)
    assert [len(x) for x in xs] == [8] * full + ([rest] if rest else [])
    assert torch.equal(torch.cat(xs).sort(0).values, t.x_train.sort(0).values)


@pytest.mark.parametrize(
    ("name", "kwargs", "match"),
    [
        ("spirals", {"noise": -1.0}, "noise"),
        ("spirals", {"imbalance": 0.0}, "imbalance"),
        ("spirals", {"test_fraction": 1.0}, "test_fraction"),
        ("spirals", {"n_classes": 1}, "n_classes"),
        ("spirals", {"seed": 1.5}, "seed must be an integer"),
        ("signal_1d", {"n": 16, "frequencies": (9,)}, "raise n"),
        ("signal_1d", {"kind": "square"}, "kind must be one of"),
        ("signal_1d", {"frequencies": (1, 2), "amplitudes": (1.0,)}, "amplitudes"),
        ("image", {"name": "lena"}, "unknown image"),
        ("shapes", {"classes": ("hexagon",)}, "subset"),
        ("modular_addition", {"train_fraction": 1.0}, "train_fraction"),
        ("majority", {"length": 4}, "odd"),
        ("parentheses", {"length": 5}, "even"),
        ("associative_recall", {"n_pairs": 9, "n_keys": 8}, "distinct"),
        ("hierarchical", {"n_symbols": 2, "n_rules": 3}, "child pairs"),
        ("char_text", {"seq_len": 1000}, "too long"),
        ("nope", {}, "unknown task"),
    ],
)
def test_bad_arguments(name, kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_task(name, **kwargs)


def test_unknown_keyword_points_to_help():
    with pytest.raises(TypeError, match="help"):
        make_task("moons", wobble=3)
