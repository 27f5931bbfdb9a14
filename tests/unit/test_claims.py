"""Claim records: validated, written where the notebook tests look, and the scoreboard rows
they produce parse back to the same numbers."""

from __future__ import annotations

import pytest

from explorer.claims import (
    CLAIM_IDS,
    CLAIMS_DIR_ENV,
    ClaimResult,
    main,
    read_scoreboard,
    record_claim,
    scoreboard_row,
)


def _record(**overrides):
    kwargs = dict(
        effect="dB above the noisy image", values=[6.0, 5.5, 6.5], seeds=[0, 1, 2],
        control="the noisy image", control_values=[20.0, 20.0, 20.0],
    )  # fmt: skip
    kwargs.update(overrides)
    return record_claim("F6", "reproduced", **kwargs)


def test_there_are_22_claims() -> None:
    assert len(CLAIM_IDS) == len(set(CLAIM_IDS)) == 22


def test_summary_statistics_and_frame() -> None:
    r = _record()
    assert (r.n, r.mean, r.min, r.max) == (3, 6.0, 5.5, 6.5)
    assert r.std == pytest.approx(0.5)
    assert r.summary == "6 ± 0.5 (5.5 … 6.5), 3 seeds"
    assert list(r.frame().columns) == ["seed", "effect", "control"]


def test_written_only_when_the_folder_is_set(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv(CLAIMS_DIR_ENV, raising=False)
    _record()
    assert not list(tmp_path.iterdir())
    monkeypatch.setenv(CLAIMS_DIR_ENV, str(tmp_path / "13_nb"))
    r = _record(note="peak at step 200")
    back = ClaimResult.from_json((tmp_path / "13_nb" / "F6.json").read_text())
    assert back == r


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"values": [1.0, 2.0]}, "one value per distinct seed"),
        ({"seeds": [0, 0, 1]}, "one value per distinct seed"),
        ({"values": [1.0, float("nan"), 2.0]}, "NaN"),
        ({"control_values": [1.0]}, "control_values"),
        ({"control": " "}, "in words"),
        ({"values": [1.0, 2.0], "seeds": [0, 1], "control_values": None}, "at least 3 seeds"),
    ],
)
def test_bad_records_are_rejected(overrides, match) -> None:
    with pytest.raises(ValueError, match=match):
        _record(**overrides)


def test_unknown_claim_or_status() -> None:
    with pytest.raises(ValueError, match="unknown claim"):
        record_claim("Z9", "reproduced", effect="e", values=[1, 2, 3], seeds=[0, 1, 2], control="c")
    with pytest.raises(ValueError, match="status"):
        record_claim("F1", "maybe", effect="e", values=[1, 2, 3], seeds=[0, 1, 2], control="c")


def test_an_honest_negative_may_rest_on_one_run() -> None:
    r = record_claim("A4", "not reproduced", effect="e", values=[0.1], seeds=[0], control="c")
    assert r.std == 0.0


def test_scoreboard_row_round_trip() -> None:
    r = _record(values=[-0.0123, 1.5e-5, 2.25])
    text = "intro\n| claim | status |\n|---|---|\n" + scoreboard_row(r, "13_nb", "n13-12") + "\n"
    (row,) = read_scoreboard(text)
    assert (row.claim, row.status, row.notebook, row.cell, row.n) == (
        "F6", "reproduced", "13_nb", "n13-12", 3,
    )  # fmt: skip
    assert row.min == pytest.approx(r.min, rel=1e-2) and row.max == pytest.approx(r.max, rel=1e-2)
    assert row.mean == pytest.approx(r.mean, rel=1e-2)
    assert row.effect == r.effect and row.control == r.control


def test_a_malformed_claim_row_is_an_error() -> None:
    with pytest.raises(ValueError, match="does not parse"):
        read_scoreboard("| F1 | reproduced | somewhere | big | x | y |")


def test_cli_prints_rows_with_the_recording_cell(tmp_path, monkeypatch, capsys) -> None:
    import json

    nb = {"cells": [{"id": "c1", "source": ["x = 1"]},
                    {"id": "c2", "source": ['f6 = record_claim(\n', '    "F6", "reproduced")']}]}  # fmt: skip
    (tmp_path / "nbs").mkdir()
    (tmp_path / "nbs" / "13_nb.ipynb").write_text(json.dumps(nb))
    monkeypatch.setenv(CLAIMS_DIR_ENV, str(tmp_path / "claims" / "13_nb"))
    _record()
    assert main([str(tmp_path / "claims"), str(tmp_path / "nbs")]) == 0
    (row,) = read_scoreboard(capsys.readouterr().out)
    assert (row.claim, row.notebook, row.cell) == ("F6", "13_nb", "c2")
    assert main([]) == 2
