"""Every tutorial runs headless, top to bottom, and its asserted claims hold; the claims
scoreboard (notebooks/CLAIMS.md) says what the notebooks measured."""

from __future__ import annotations

import re
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from explorer.claims import (
    CLAIM_IDS,
    CLAIMS_DIR_ENV,
    STATUSES,
    ClaimResult,
    ScoreboardRow,
    read_scoreboard,
)

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
SCOREBOARD = NOTEBOOKS / "CLAIMS.md"


@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("*.ipynb")), ids=lambda p: p.stem)
def test_notebook_runs(
    path: Path,
    notebook_durations: dict[str, float],
    claims_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    nb = nbformat.read(path, as_version=4)
    # The kernel inherits the environment: record_claim writes this notebook's results here.
    monkeypatch.setenv(CLAIMS_DIR_ENV, str(claims_dir / path.stem))
    client = NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}
    )
    t0 = time.perf_counter()
    try:
        client.execute()
    except CellExecutionError as err:
        pytest.fail(f"{path.name} failed:\n{str(err)[-3000:]}")
    finally:
        notebook_durations[path.stem] = time.perf_counter() - t0


def test_notebooks_are_committed_without_outputs() -> None:
    for path in NOTEBOOKS.glob("*.ipynb"):
        nb = nbformat.read(path, as_version=4)
        dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.outputs]
        assert not dirty, f"{path.name}: cells {dirty} have outputs; clear them before committing"


def _scoreboard() -> list[ScoreboardRow]:
    return read_scoreboard(SCOREBOARD.read_text())


def test_scoreboard_rows_point_at_the_cells_that_record_them() -> None:
    rows = _scoreboard()
    ids = [r.claim for r in rows]
    assert len(ids) == len(set(ids)), f"a claim appears twice in CLAIMS.md: {ids}"
    assert set(ids) <= set(CLAIM_IDS), set(ids) - set(CLAIM_IDS)
    for row in rows:
        assert row.status in STATUSES, row
        path = NOTEBOOKS / f"{row.notebook}.ipynb"
        assert path.exists(), f"{row.claim}: no notebook {path.name}"
        cells = {c.get("id"): c.source for c in nbformat.read(path, as_version=4).cells}
        assert row.cell in cells, f"{row.claim}: {path.name} has no cell {row.cell!r}"
        assert re.search(rf'record_claim\(\s*"{row.claim}"', cells[row.cell]), (
            f"{row.claim}: cell {row.cell} of {path.name} does not record it"
        )
    text = SCOREBOARD.read_text()
    for status in STATUSES:
        count = sum(r.status == status for r in rows)
        assert f"**{status}: {count}**" in text, f"the summary line must say {status}: {count}"


def _close(written: float, measured: float, spread: float) -> bool:
    """Written with 3 significant digits; a different CPU may move results a little."""
    return abs(written - measured) <= 0.05 * abs(measured) + 0.25 * spread + 5e-3


def test_scoreboard_matches_the_recorded_results(
    claims_dir: Path, notebook_durations: dict[str, float]
) -> None:
    ran = set(notebook_durations)
    if not ran:
        pytest.skip("no notebook ran in this session; the scoreboard is compared after they run")
    rows = {r.claim: r for r in _scoreboard()}
    recorded = {
        (p.parent.name, p.stem): ClaimResult.from_json(p.read_text())
        for p in claims_dir.glob("*/*.json")
    }
    for (notebook, claim), result in recorded.items():
        assert claim in rows, f"{notebook} records {claim}, which CLAIMS.md does not list"
        assert rows[claim].notebook == notebook, (claim, rows[claim].notebook, notebook)
    for claim, row in rows.items():
        if row.notebook not in ran:
            continue
        result = recorded.get((row.notebook, claim))
        assert result is not None, f"{row.notebook} ran but recorded no result for {claim}"
        assert row.status == result.status, (claim, row.status, result.status)
        assert row.n == result.n, (claim, row.n, result.n)
        for name in ("mean", "min", "max"):
            written, measured = getattr(row, name), getattr(result, name)
            assert _close(written, measured, result.std), (
                f"{claim}: CLAIMS.md says {name} {written}, the notebook measured {measured:.4g}; "
                f"update the row (python -m explorer.claims <dir> prints it): {result!r}"
            )
