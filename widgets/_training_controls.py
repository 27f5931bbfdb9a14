"""The training lab's control panel: one widget per setting, what each task shows, the
defaults per group of tasks, and the checks that turn an out-of-range value into a
ValueError naming the field and its range. Holds no training state: the lab wires it.

Every control has its own ``Layout`` (hiding one — e.g. *noise* for a sequence task — never
hides another). Model knobs exist once per family (``"mlp.width"``, ``"transformer.n_heads"``);
the panel shows the current family's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import ipywidgets as W
import numpy as np

from explorer.models.layers import ACTIVATIONS, ENCODINGS
from explorer.models.positional import POSITIONAL
from explorer.models.registry import FAMILIES
from widgets._lab import close_tree

__all__ = [
    "GROUP_DEFAULTS",
    "GROUP_TRAIN",
    "TASK_CHOICES",
    "USER_DATA",
    "TrainingControls",
    "group_of",
]

TOY_2D = ("spirals", "moons", "circles", "xor", "blobs", "checkerboard")
FIELDS = ("signal_1d", "image")
IMAGES = ("digits", "shapes")
SEQUENCES = ("copy", "reverse", "sort", "induction", "majority", "parentheses", "modular_addition")
TASK_CHOICES = TOY_2D + FIELDS + IMAGES + SEQUENCES
USER_DATA = "data"
DATA_CONTROLS = ("task", "noise", "n", "test_fraction")
TRAIN_CONTROLS = ("optimizer", "lr", "batch_size", "weight_decay", "seed")
_TASK_LABELS = {"signal_1d": "signal (1-D fit)", "image": "image (fit a photo)",
                "digits": "digits (8×8 classes)", "shapes": "shapes (16×16 classes)",
                "modular_addition": "modular addition"}  # fmt: skip
ATTENTION_CHOICES = ("softmax", "linear", "performer", "sliding", "strided", "topk", "none")
BATCH_CHOICES = (("full", 0), ("16", 16), ("32", 32), ("64", 64), ("128", 128), ("256", 256))
DECAY_CHOICES = (0.0, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)
CNN_CHANNELS = ((16,), (16, 32), (16, 32, 32), (32, 64))

# What makes each group of tasks train visibly (applied when the task group changes)
GROUP_DEFAULTS: dict[str, dict[str, Any]] = {
    "toy": {"lr": 1e-2, "batch_size": 0, "record_every": 25},
    "field": {"lr": 1e-3, "batch_size": 0, "record_every": 25},
    "image": {"lr": 3e-3, "batch_size": 64, "record_every": 10},
    "sequence": {"lr": 3e-3, "batch_size": 64, "record_every": 10},
    "data": {"lr": 1e-2, "batch_size": 0, "record_every": 25},
}
GROUP_TRAIN: dict[str, dict[str, Any]] = {  # TrainConfig fields without a control
    "toy": {"eval_samples": 1024, "eval_every": 10},
    "field": {"eval_samples": 1024, "eval_every": 10},
    "image": {"eval_samples": 512, "eval_every": 25},
    "sequence": {"eval_samples": 256, "eval_every": 25},
    "data": {"eval_samples": 1024, "eval_every": 10},
}
KNOB_DEFAULTS: dict[str, dict[str, Any]] = {
    "mlp": {"depth": 3, "width": 16, "activation": "relu", "encoding": "raw", "fourier_scale": 10.0},
    "neural_field": {"depth": 3, "width": 64, "activation": "sine", "encoding": "raw",
                     "fourier_scale": 10.0, "omega0": 30.0},
    "transformer": {"n_layers": 2, "n_heads": 2, "d_model": 32, "attention": "softmax", "pos": "learned"},
    "cnn": {"channels": (16, 32), "kernel_size": 3, "activation": "relu"},
    "vit": {"n_layers": 2, "n_heads": 2, "d_model": 32, "patch_size": 2, "attention": "softmax"},
}  # fmt: skip
FIELD_WIDTH = 64  # an MLP fitting a field needs more width than one on a 2-D toy
_STYLE = {"description_width": "72px"}


def group_of(task_name: str) -> str:
    """toy | field | image | sequence | data (your own)."""
    for group, names in (("toy", TOY_2D), ("field", FIELDS), ("image", IMAGES),
                         ("sequence", SEQUENCES)):  # fmt: skip
        if task_name in names:
            return group
    return "data"


def _opts(**extra: Any) -> dict[str, Any]:
    """Keywords for one control: a new Layout each time (never shared between controls)."""
    return {"layout": W.Layout(width="230px"), "style": dict(_STYLE), **extra}


def _values(widget: W.Widget) -> list[Any]:
    return [o[1] if isinstance(o, tuple) else o for o in widget.options]


def check_value(name: str, widget: W.Widget, value: Any) -> Any:
    """``value`` if ``widget`` can show it, else a ValueError naming the field and the range."""
    if isinstance(widget, W.Dropdown):
        allowed = _values(widget)
        if value not in allowed:
            raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if isinstance(widget, W.FloatLogSlider):
        lo, hi = widget.base**widget.min, widget.base**widget.max
    else:
        lo, hi = widget.min, widget.max
    if isinstance(widget, (W.IntSlider, W.BoundedIntText)) and int(value) != value:
        raise ValueError(f"{name} must be a whole number in [{lo}, {hi}], got {value!r}")
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be in [{lo:g}, {hi:g}], got {value!r}")
    return value


def _knob(fam: str, key: str) -> W.Widget:
    d = KNOB_DEFAULTS[fam]
    make: dict[str, Callable[[], W.Widget]] = {
        "depth": lambda: W.IntSlider(value=d["depth"], min=1, max=8, description="layers", **_opts(continuous_update=False)),
        "width": lambda: W.IntSlider(value=d["width"], min=2, max=256, description="width", **_opts(continuous_update=False)),
        "activation": lambda: W.Dropdown(options=ACTIVATIONS if fam != "cnn" else ("relu", "gelu", "tanh", "silu"),
                                         value=d["activation"], description="activation", **_opts()),
        "encoding": lambda: W.Dropdown(options=ENCODINGS, value=d["encoding"], description="encoding", **_opts()),
        "fourier_scale": lambda: W.FloatLogSlider(value=d["fourier_scale"], base=10, min=-1, max=2.5,
                                                  description="σ (Fourier)", **_opts(continuous_update=False)),
        "omega0": lambda: W.FloatLogSlider(value=d["omega0"], base=10, min=0, max=2.5, description="ω₀ (sine)", **_opts(continuous_update=False)),
        "n_layers": lambda: W.IntSlider(value=d["n_layers"], min=1, max=6, description="layers", **_opts(continuous_update=False)),
        "n_heads": lambda: W.Dropdown(options=(1, 2, 4, 8), value=d["n_heads"], description="heads", **_opts()),
        "d_model": lambda: W.Dropdown(options=(16, 32, 64, 128), value=d["d_model"], description="d_model", **_opts()),
        "attention": lambda: W.Dropdown(options=ATTENTION_CHOICES, value=d["attention"], description="attention", **_opts()),
        "pos": lambda: W.Dropdown(options=POSITIONAL, value=d["pos"], description="position", **_opts()),
        "channels": lambda: W.Dropdown(options=[("-".join(map(str, ch)), ch) for ch in CNN_CHANNELS],
                                       value=d["channels"], description="channels", **_opts()),
        "kernel_size": lambda: W.Dropdown(options=(3, 5), value=d["kernel_size"], description="kernel", **_opts()),
        "patch_size": lambda: W.Dropdown(options=(1, 2, 4), value=d["patch_size"], description="patch", **_opts()),
    }  # fmt: skip
    return make[key]()


class TrainingControls:
    """The panel: ``widgets`` by key, ``buttons`` (Play, Pause, Step, Reset, Save), ``box``.

    ``user_model``: a label when the lab trains your own module (no family, no knobs);
    ``user_data``: True when the task is your data (the task menu offers only it).
    """

    def __init__(self, *, user_model: str | None, user_data: bool) -> None:
        self.user_model = user_model
        options = (
            [("your data", USER_DATA)]
            if user_data
            else [(_TASK_LABELS.get(t, t), t) for t in TASK_CHOICES]
        )
        w: dict[str, W.Widget] = {
            "task": W.Dropdown(options=options, description="task", **_opts()),
            "noise": W.FloatSlider(value=0.1, min=0.0, max=0.5, step=0.01, description="noise", **_opts(continuous_update=False)),
            "n": W.IntSlider(value=500, min=50, max=5000, step=50, description="points", **_opts(continuous_update=False)),
            "test_fraction": W.FloatSlider(value=0.25, min=0.05, max=0.9, step=0.05, description="test split", **_opts(continuous_update=False)),
            "family": W.Dropdown(options=list(FAMILIES), description="model", **_opts()),
            "optimizer": W.Dropdown(options=("sgd", "adam", "adamw"), value="adam", description="optimizer", **_opts()),
            "lr": W.FloatLogSlider(value=1e-2, base=10, min=-5, max=1, description="learn rate",
                                   readout_format=".1e", **_opts(continuous_update=False)),
            "batch_size": W.Dropdown(options=BATCH_CHOICES, value=0, description="batch", **_opts()),
            "weight_decay": W.Dropdown(options=DECAY_CHOICES, value=0.0, description="w. decay", **_opts()),
            "seed": W.BoundedIntText(value=0, min=0, max=2**31 - 1, description="seed", **_opts()),
        }  # fmt: skip
        for fam, keys in FAMILIES.items():
            w.update({f"{fam}.{k}": _knob(fam, k) for k in keys})
        for name, widget in w.items():
            widget.add_class(f"xp-training-{name.replace('.', '-').replace('_', '-')}")
        self.widgets = w
        self.buttons = {
            name: W.Button(description=name, tooltip=tip, layout=W.Layout(width="80px"))
            for name, tip in (("Play", "train in the background"), ("Pause", "stop training"),
                              ("Step", "one training step"), ("Reset", "back to step 0"),
                              ("Save", "save the run (checkpoint, history, snapshots)"))
        }  # fmt: skip
        self.buttons["Play"].button_style = "success"
        self._family_boxes = {
            f: W.VBox([w[f"{f}.{k}"] for k in keys]) for f, keys in FAMILIES.items()
        }
        self._model_box = W.VBox()
        note = W.HTML("" if user_model is None else f"your model: <code>{user_model}</code>")
        self.box = W.HBox([
            W.VBox([W.HTML("<b>data</b>"), *(w[k] for k in DATA_CONTROLS)]),
            W.VBox([W.HTML("<b>model</b>"), note, w["family"], self._model_box]),
            W.VBox([W.HTML("<b>training</b>"), *(w[k] for k in TRAIN_CONTROLS)]),
            W.VBox([W.HTML("<b>run</b>"), *self.buttons.values()]),
        ], layout=W.Layout(flex_flow="row wrap", align_items="flex-start"))  # fmt: skip
        self.box.add_class("xp-training-controls")

    def close(self) -> None:
        """Close every widget of the panel, shown or not (the other families' knobs)."""
        close_tree(self.box)
        for box in self._family_boxes.values():
            close_tree(box)

    @property
    def family(self) -> str | None:
        return None if self.user_model is not None else self.widgets["family"].value

    def public(self) -> dict[str, W.Widget]:
        """The controls by public name: data, family, the current family's knobs, training."""
        fam = self.family
        knobs = {} if fam is None else {k: self.widgets[f"{fam}.{k}"] for k in FAMILIES[fam]}
        w = self.widgets
        return {**{k: w[k] for k in (*DATA_CONTROLS, "family")}, **knobs,
                **{k: w[k] for k in TRAIN_CONTROLS}}  # fmt: skip

    def knobs(self) -> dict[str, Any]:
        fam = self.family
        return {} if fam is None else {k: self.widgets[f"{fam}.{k}"].value for k in FAMILIES[fam]}

    def checked(
        self, values: Mapping[str, Any], family: str | None, fits: Sequence[str]
    ) -> list[tuple[W.Widget, Any]]:
        """(widget, value) for each of ``values``, every one checked before any is set:
        ``family`` is the model family the knobs belong to, ``fits`` the families the task
        allows."""
        w = self.widgets
        knobs = FAMILIES.get(family or "", ())
        out: list[tuple[W.Widget, Any]] = []
        for key, value in values.items():
            if key in ("task", "noise", "n", "test_fraction", "optimizer", "lr", "seed"):
                out.append((w[key], check_value(key, w[key], value)))
            elif key == "family":
                if self.user_model is not None:
                    raise ValueError("family does not apply: the lab trains your own model")
                if value not in fits:
                    raise ValueError(
                        f"family must be one of {list(fits)} for this task, got {value!r}"
                    )
                out.append((w["family"], value))
            elif key in ("batch_size", "weight_decay"):
                out.append((w[key], self._offer(key, value)))
            elif key in knobs:
                widget = w[f"{family}.{key}"]
                value = tuple(value) if key == "channels" else value
                out.append((widget, check_value(key, widget, value)))
            elif self.user_model is not None and key in {k for ks in FAMILIES.values() for k in ks}:
                raise ValueError(f"{key} does not apply: the lab trains your own model")
            else:
                allowed = sorted({*DATA_CONTROLS, "family", *knobs, *TRAIN_CONTROLS})
                scope = f"{family} setting" if family else "setting"
                raise ValueError(f"unknown {scope} {key!r}; available: {allowed}")
        return out

    def _offer(self, key: str, value: Any) -> Any:
        """Batch size and weight decay take any valid value: a new one joins the menu."""
        widget = self.widgets[key]
        if key == "batch_size":
            value = 0 if value is None else value
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise ValueError(
                    f"batch_size must be a positive integer or None (full batch), got {value!r}"
                )
            label = "full" if value == 0 else str(int(value))
        else:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
                raise ValueError(f"weight_decay must be a number in [0, 1), got {value!r}")
            label = f"{value:g}"
        if value not in _values(widget):
            options = [o if isinstance(o, tuple) else (f"{o:g}", o) for o in widget.options]
            widget.options = sorted([*options, (label, value)], key=lambda o: o[1])
        return value

    def apply_group(self, fits: Sequence[str], before: str, explicit: set[str]) -> None:
        """The task changed: offer the families that fit it (its natural one unless chosen),
        a field's MLP width, and — when the task group changed — the group's learning rate
        and batch size, unless given in ``explicit``."""
        w = self.widgets
        group = group_of(w["task"].value)
        if self.user_model is None:
            w["family"].options = list(fits)
            if "family" not in explicit:
                w["family"].value = fits[0]
            if w["family"].value == "mlp" and "width" not in explicit:
                w["mlp.width"].value = (
                    FIELD_WIDTH if group == "field" else KNOB_DEFAULTS["mlp"]["width"]
                )
        if group != before:
            for key in ("lr", "batch_size"):
                if key not in explicit:
                    w[key].value = GROUP_DEFAULTS[group][key]

    def sync_visibility(self) -> None:
        """Show what applies to the task: noise/points for 2-D toys, no test split for fields
        (they hold out every other grid point), the current family's knobs."""
        w, name, fam = self.widgets, self.widgets["task"].value, self.family
        self._model_box.children = [] if fam is None else [self._family_boxes[fam]]
        w["family"].layout.display = "none" if fam is None else None
        for key in ("noise", "n"):
            w[key].layout.display = None if name in TOY_2D else "none"
        w["test_fraction"].layout.display = "none" if name in FIELDS else None

    def set_enabled(self, enabled: bool) -> None:
        for widget in (*self.widgets.values(), *self.buttons.values()):
            widget.disabled = not enabled
        self.box.layout.display = "" if enabled else "none"
