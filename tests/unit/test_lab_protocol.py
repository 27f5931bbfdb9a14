"""The lab protocol: every lab speaks the same words, and the live throttle draws the first
snapshot at once, collapses bursts, and always draws the last one."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from ipywidgets import Layout, Style
from ipywidgets.widgets.widget import _instances

from widgets import (
    AlignmentLab,
    AttentionLab,
    GeometryLab,
    ProbeLab,
    SpectrumLab,
    SweepLab,
    TrainingLab,
)
from widgets._lab import Lab, Throttle

PROTOCOL = ("follow", "close", "views", "to_figure", "frame", "export", "status", "last_error",
            "selection", "panels", "wait", "show_step")  # fmt: skip
LABS = [TrainingLab, AttentionLab, SpectrumLab, GeometryLab, AlignmentLab, ProbeLab, SweepLab]


@pytest.mark.parametrize("cls", LABS, ids=lambda c: c.__name__)
def test_every_lab_has_the_protocol(cls):
    assert issubclass(cls, Lab)
    for name in PROTOCOL:
        assert hasattr(cls, name) or name == "last_error", name
    assert "source" in __import__("inspect").signature(cls).parameters


def test_throttle_is_leading_and_trailing():
    drawn: list[int] = []
    started = threading.Event()

    def draw(item: int) -> None:
        drawn.append(item)
        started.set()
        time.sleep(0.05)

    throttle = Throttle(draw, 0.3, name="test-throttle")
    t0 = time.monotonic()
    throttle.submit(1)
    assert started.wait(1.0) and time.monotonic() - t0 < 0.2  # leading: drawn at once
    for i in range(2, 30):  # a burst while the first draw runs and during the interval
        throttle.submit(i)
    assert throttle.wait(5.0)
    assert drawn == [1, 29]  # the burst collapsed to its last item, which was drawn
    time.sleep(0.35)
    throttle.submit(30)
    assert throttle.wait(5.0) and drawn[-1] == 30
    throttle.close()
    throttle.submit(31)
    assert throttle.wait(1.0) and drawn[-1] == 30


def test_close_is_idempotent_and_unsubscribes(tmp_path):
    lab = TrainingLab("moons", task_kwargs={"n": 100}, out_dir=tmp_path)
    follower = TrainingLab("moons", task_kwargs={"n": 100}, out_dir=tmp_path)
    follower.follow(lab)
    assert not follower.own and follower.buttons["Play"].disabled
    with pytest.raises(RuntimeError, match="read-only"):
        follower.play()
    lab.step(25)
    follower.wait()
    assert follower.shown_step == 25
    follower.close()
    follower.close()
    lab.step(25)
    assert follower.shown_step == 25
    lab.close()


def _open_widgets(before: set[str]) -> list[str]:
    """Widgets opened since ``before`` and not closed (layout and style models left out: they
    stay open by design, often shared)."""
    return [
        type(w).__name__
        for k, w in _instances.items()
        if k not in before and not isinstance(w, (Layout, Style))
    ]


def test_close_frees_every_widget_and_a_reset_keeps_none_of_the_old_views(tmp_path):
    """ipywidgets keeps every widget (its state, figures, image buffers) until it is closed: a
    lab that rebuilds its views, or closes only its outer box, leaks the rest for the life of
    the kernel."""
    before = set(_instances)
    lab = TrainingLab("moons", task_kwargs={"n": 100}, out_dir=tmp_path)
    made = len(_open_widgets(before))
    lab.step(2)
    for _ in range(3):
        lab.reset()
    assert len(_open_widgets(before)) == made
    other = TrainingLab("signal_1d", out_dir=tmp_path)  # its views leave a heatmap grid unused
    lab.follow(other)  # read-only: views built for another source
    lab.follow(lab)
    geometry = GeometryLab({"x": np.random.default_rng(0).normal(size=(200, 4))})
    for each in (other, geometry, lab):
        each.close()
    assert _open_widgets(before) == []


def test_export_bar_writes_and_says_wrote(tmp_path):
    lab = TrainingLab("moons", task_kwargs={"n": 100}, out_dir=tmp_path)
    try:
        lab.step(3)
        bar = lab.children[-2]
        view, fmt, size, button = bar.children
        assert [v for _, v in view.options] == ["", "metrics", "predictions"]
        view.value, fmt.value = "metrics", "csv"
        assert size.layout.display == "none"  # sizes are for figures only
        button.click()
        assert lab.status.startswith("wrote ") and lab.status.endswith("training_metrics_step3.csv")
        assert (tmp_path / "training_metrics_step3.csv").stat().st_size > 0
        view.value, fmt.value, size.value = "predictions", "html", "column"
        assert size.layout.display != "none"
        button.click()
        assert lab.status.endswith("training_predictions_step3.html"), lab.status
        page = (tmp_path / "training_predictions_step3.html").read_text()
        assert "<html" in page and lab.last_error is None
        with pytest.raises(ValueError, match=r"unknown export format '\.xlsx'"):
            lab.export(tmp_path / "x.xlsx")
        with pytest.raises(
            ValueError, match=r"size must be one of \['screen', 'column', 'two-column'\]"
        ):
            lab.export(tmp_path / "x.png", size="poster")
    finally:
        lab.close()


@pytest.mark.parametrize("cls", LABS, ids=lambda c: c.__name__)
def test_no_lab_shadows_a_widget_attribute(cls):
    """A lab attribute named like one of ipywidgets' own (``_compare``, ``log``, ``_lock`` …)
    silently breaks syncing or logging: every name a lab module sets or defines is checked."""
    import inspect
    import re

    import ipywidgets as W

    own = {"__init__", "close", "_repr_mimebundle_", "children"}
    source = "".join(
        inspect.getsource(c) for c in cls.__mro__ if c.__module__.startswith("widgets")
    )
    names = set(re.findall(r"self\.(\w+)\s*(?::[^=\n]+)?=[^=]", source))
    names |= set(re.findall(r"def (\w+)\(self", source))
    assert not (names & set(dir(W.VBox))) - own
