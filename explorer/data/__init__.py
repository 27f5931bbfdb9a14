"""Deterministic task generators (one seed → one dataset) and loaders for the shipped data.

Every generator returns a :class:`Task`; :func:`make_task` builds one by name::

    task = make_task("spirals", n=500, noise=0.05, seed=1)
    task = make_task("modular_addition", p=53, train_fraction=0.4)
    task = user_task(df, features=["a", "b"], target="label")     # your own data
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from explorer.data.features import feature_pair
from explorer.data.graphs import Graph, stochastic_block_model
from explorer.data.images import PHOTOS, PROCEDURAL, digits, image, image_prior, image_task, shapes
from explorer.data.markov import topic_markov
from explorer.data.sequences import (
    associative_recall,
    copy,
    hierarchical,
    induction,
    majority,
    modular_addition,
    parentheses,
    repeated_segment,
    reverse,
    sort,
)
from explorer.data.signals import coordinate_grid, field_task, signal_1d
from explorer.data.task import IGNORE_INDEX, KINDS, Task
from explorer.data.text import char_text, load_text
from explorer.data.toy2d import blobs, checkerboard, circles, moons, spirals, xor
from explorer.data.user import user_task

__all__ = [
    "IGNORE_INDEX",
    "KINDS",
    "PHOTOS",
    "PROCEDURAL",
    "TASKS",
    "Graph",
    "Task",
    "associative_recall",
    "blobs",
    "char_text",
    "checkerboard",
    "circles",
    "coordinate_grid",
    "copy",
    "digits",
    "feature_pair",
    "field_task",
    "hierarchical",
    "image",
    "image_prior",
    "image_task",
    "induction",
    "load_text",
    "majority",
    "make_task",
    "modular_addition",
    "moons",
    "parentheses",
    "repeated_segment",
    "reverse",
    "shapes",
    "signal_1d",
    "sort",
    "spirals",
    "stochastic_block_model",
    "topic_markov",
    "user_task",
    "xor",
]

TASKS: dict[str, Callable[..., Task]] = {
    "spirals": spirals,
    "moons": moons,
    "circles": circles,
    "xor": xor,
    "blobs": blobs,
    "checkerboard": checkerboard,
    "signal_1d": signal_1d,
    "image": image_task,
    "image_prior": image_prior,
    "digits": digits,
    "feature_pair": feature_pair,
    "shapes": shapes,
    "modular_addition": modular_addition,
    "copy": copy,
    "reverse": reverse,
    "sort": sort,
    "induction": induction,
    "repeated_segment": repeated_segment,
    "associative_recall": associative_recall,
    "majority": majority,
    "parentheses": parentheses,
    "hierarchical": hierarchical,
    "topic_markov": topic_markov,
    "char_text": char_text,
}


def make_task(task: str, /, **kwargs: Any) -> Task:
    """Build the task named ``task`` (a key of :data:`TASKS`) with the generator's keywords."""
    try:
        fn = TASKS[task]
    except KeyError:
        raise ValueError(f"unknown task {task!r}; available: {sorted(TASKS)}") from None
    try:
        return fn(**kwargs)
    except TypeError as err:
        raise TypeError(
            f"make_task({task!r}): {err}. See help(explorer.data.{fn.__name__})."
        ) from err
