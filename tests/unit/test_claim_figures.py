"""Figure builders of the claim tutorials: every heatmap has a colour scale and axis titles,
curves show the spread over seeds."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.claims import record_claim
from widgets.figures.claims import Panel, claim_figure, heatmap_panels, seed_band_figure


def test_seed_band_draws_mean_and_min_max_band() -> None:
    v = np.array([[1.0, 2.0, 3.0], [3.0, 4.0, 5.0]])
    fig = seed_band_figure([0, 1, 2], {"a": v, "b": v[0]}, xlabel="step", ylabel="PSNR",
                           levels={"control": 1.5})  # fmt: skip
    band, line, single = fig.data
    np.testing.assert_allclose(line.y, [2.0, 3.0, 4.0])
    np.testing.assert_allclose(band.y, [3, 4, 5, 3, 2, 1])
    assert line.name == "a (2 seeds)" and single.name == "b"
    assert fig.layout.xaxis.title.text == "step" and fig.layout.yaxis.title.text == "PSNR"
    assert len(fig.layout.shapes) == 1
    with pytest.raises(ValueError, match="points per seed"):
        seed_band_figure([0, 1], {"a": v}, xlabel="x", ylabel="y")


def test_heatmap_panels_share_one_titled_colour_scale() -> None:
    fig = heatmap_panels(
        [Panel(np.eye(3), "one"), Panel(2 * np.eye(3), "two", x=["a", "b", "c"])],
        xlabel="frequency",
        ylabel="channel",
        colorbar_title="log10 power",
    )
    assert all(t.coloraxis == "coloraxis" for t in fig.data)
    assert fig.layout.coloraxis.colorbar.title.text == "log10 power"
    assert (fig.layout.coloraxis.cmin, fig.layout.coloraxis.cmax) == (0.0, 2.0)
    assert fig.layout.xaxis.title.text == fig.layout.xaxis2.title.text == "frequency"
    assert fig.layout.yaxis.title.text == fig.layout.yaxis2.title.text == "channel"
    with pytest.raises(ValueError, match="no panels"):
        heatmap_panels([], xlabel="x", ylabel="y", colorbar_title="z")


def test_claim_figure_shows_effect_and_control_per_seed() -> None:
    r = record_claim("F6", "reproduced", effect="dB", values=[6, 5, 7], seeds=[0, 1, 2],
                     control="noisy", control_values=[20, 20, 20])  # fmt: skip
    fig = claim_figure(r)
    assert [t.name for t in fig.data] == ["effect", "control"]
    assert fig.layout.xaxis.title.text == "seed" and "F6" in fig.layout.title.text
