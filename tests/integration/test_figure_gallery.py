"""Every public builder rendered by kaleido at one-column print size: nothing drawn touches the
edge of the image (a cut title, axis title, tick label or legend would), and the PNG is 3.5 in
wide (rendered at 150 dpi here to save time; the layout does not depend on it). The PNGs and a
contact sheet go to ``artifacts/figures/`` for a person to look at."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from widgets.export import EXPORT_SIZES, export
from widgets.figures._gallery import cases, contact_sheet

SHEET = Path(__file__).resolve().parents[2] / "artifacts" / "figures"


@pytest.mark.parametrize("size", ["column"])
def test_every_builder_renders_uncut_at_print_size(size: str) -> None:
    preset = dataclasses.replace(EXPORT_SIZES[size], dpi=150)
    paths, cut = [], []
    for name, case in cases().items():
        path = export(case(), SHEET / size / f"{name}.png", size=preset)
        paths.append(path)
        img = Image.open(path)
        assert img.info["dpi"][0] == pytest.approx(preset.dpi, abs=0.5), name
        assert img.size[0] == round(preset.width_in * preset.dpi), name
        grey = np.asarray(img.convert("L"), dtype=np.int16)
        frame = np.concatenate(
            [grey[:3].ravel(), grey[-3:].ravel(), grey[:, :3].ravel(), grey[:, -3:].ravel()]
        )
        if frame.min() < 235:
            cut.append(name)
    contact_sheet(paths, SHEET / f"contact_sheet_{size}.png")
    assert not cut, f"drawn to the edge (cut) at {size} size: {cut}"
