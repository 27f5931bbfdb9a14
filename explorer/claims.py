"""Paper claims the tutorials reproduce: one record per claim, an effect per seed and a control.

A tutorial measures a claim's effect on several seeds, next to the same measure on a control
(shuffled labels, an untrained model, a random map of equal entropy, the input layer, ...),
asserts it, and records it::

    result = record_claim(
        "F6", "reproduced",
        effect="best PSNR to the clean image − PSNR of the noisy input (dB)",
        values=gain_db, seeds=SEEDS,
        control="the noisy input itself (what fitting the target exactly gives)",
        control_values=noisy_db,
    )

:func:`record_claim` validates the record (one finite value per seed; at least
:data:`MIN_SEEDS` seeds and a control for a claim called reproduced or partly), writes
``$EXPLORER_CLAIMS_DIR/<claim>.json`` when that variable is set (the notebook tests set it and
compare the files with ``notebooks/CLAIMS.md``), and returns a :class:`ClaimResult` whose
``frame()`` shows per-seed values and whose ``summary`` is the scoreboard's effect column.

The scoreboard is a markdown table, one row per claim (:func:`scoreboard_row` writes one,
:func:`read_scoreboard` parses them). ``python -m explorer.claims DIR [NOTEBOOKS]`` prints the
rows for the records under ``DIR/<notebook>/<claim>.json``.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "CLAIMS_DIR_ENV",
    "CLAIM_IDS",
    "MIN_SEEDS",
    "STATUSES",
    "ClaimResult",
    "ScoreboardRow",
    "read_scoreboard",
    "record_claim",
    "scoreboard_row",
]

CLAIM_IDS = (
    *(f"F{i}" for i in range(1, 7)),
    *(f"A{i}" for i in range(1, 7)),
    *(f"G{i}" for i in range(1, 6)),
    *(f"R{i}" for i in range(1, 6)),
)
STATUSES = ("reproduced", "partly", "not reproduced")
MIN_SEEDS = 3
CLAIMS_DIR_ENV = "EXPLORER_CLAIMS_DIR"


def _fmt(x: float) -> str:
    """Three significant digits, no exponent for everyday magnitudes, no "-0"."""
    text = f"{x:.3g}"
    return "0" if text in ("-0", "0") else text


@dataclass(frozen=True)
class ClaimResult:
    """One claim's measured effect: ``values[i]`` on seed ``seeds[i]``, and the control's.

    ``effect`` and ``control`` say in words what was measured; ``note`` says what did not
    reproduce or what the replicate unit is when it is not a training seed (e.g. a sentence).
    """

    claim: str
    status: str
    effect: str
    values: tuple[float, ...]
    seeds: tuple[int, ...]
    control: str
    control_values: tuple[float, ...] | None = None
    note: str = ""

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return float(np.mean(self.values))

    @property
    def std(self) -> float:
        """Sample standard deviation over seeds (0 for a single value)."""
        return float(np.std(self.values, ddof=1)) if self.n > 1 else 0.0

    @property
    def min(self) -> float:
        return float(np.min(self.values))

    @property
    def max(self) -> float:
        return float(np.max(self.values))

    @property
    def summary(self) -> str:
        """``mean ± std (min … max), n seeds`` — the scoreboard's effect column."""
        return (
            f"{_fmt(self.mean)} ± {_fmt(self.std)} ({_fmt(self.min)} … {_fmt(self.max)}), "
            f"{self.n} seeds"
        )

    def frame(self) -> pd.DataFrame:
        """Per-seed values, effect and control side by side (one row per seed)."""
        data: dict[str, Any] = {"seed": list(self.seeds), "effect": list(self.values)}
        if self.control_values is not None:
            data["control"] = list(self.control_values)
        return pd.DataFrame(data)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> ClaimResult:
        raw = json.loads(text)
        cv = raw.get("control_values")
        return cls(
            claim=raw["claim"],
            status=raw["status"],
            effect=raw["effect"],
            values=tuple(float(v) for v in raw["values"]),
            seeds=tuple(int(s) for s in raw["seeds"]),
            control=raw["control"],
            control_values=None if cv is None else tuple(float(v) for v in cv),
            note=raw.get("note", ""),
        )

    def __repr__(self) -> str:
        return (
            f"{self.claim} {self.status}: {self.effect} = {self.summary}; control: {self.control}"
        )


def _floats(values: Any, name: str) -> tuple[float, ...]:
    arr = np.asarray(values, dtype=np.float64).ravel()
    if arr.size == 0:
        raise ValueError(f"{name} is empty; give one value per seed")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} holds NaN or inf ({arr.tolist()}); a claim needs finite values")
    return tuple(float(v) for v in arr)


def record_claim(
    claim: str,
    status: str,
    *,
    effect: str,
    values: Sequence[float] | np.ndarray,
    seeds: Sequence[int],
    control: str,
    control_values: Sequence[float] | np.ndarray | None = None,
    note: str = "",
) -> ClaimResult:
    """Validate and record one claim's result (see the module docstring); returns it.

    Raises ValueError for an unknown claim id or status, values that are not one finite number
    per seed, or a claim called reproduced/partly on fewer than :data:`MIN_SEEDS` seeds or
    without a control. Writes ``<claim>.json`` under ``$EXPLORER_CLAIMS_DIR`` when it is set.
    """
    if claim not in CLAIM_IDS:
        raise ValueError(f"unknown claim id {claim!r}; ids are {', '.join(CLAIM_IDS)}")
    if status not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
    vals = _floats(values, "values")
    seed_list = tuple(int(s) for s in seeds)
    if len(seed_list) != len(vals) or len(set(seed_list)) != len(seed_list):
        raise ValueError(
            f"give one value per distinct seed: {len(vals)} values for seeds {list(seed_list)}"
        )
    controls = None if control_values is None else _floats(control_values, "control_values")
    if controls is not None and len(controls) != len(vals):
        raise ValueError(
            f"control_values must have one value per seed ({len(vals)}), got {len(controls)}"
        )
    if not effect.strip() or not control.strip():
        raise ValueError("say in words what the effect and the control are")
    if status != "not reproduced" and len(vals) < MIN_SEEDS:
        raise ValueError(
            f"a claim called {status!r} needs at least {MIN_SEEDS} seeds, got {len(vals)}"
        )
    result = ClaimResult(claim, status, effect, vals, seed_list, control, controls, note)
    folder = os.environ.get(CLAIMS_DIR_ENV)
    if folder:
        path = Path(folder)
        path.mkdir(parents=True, exist_ok=True)
        tmp = path / f".{claim}.json.tmp"
        tmp.write_text(result.to_json())
        os.replace(tmp, path / f"{claim}.json")
    return result


@dataclass(frozen=True)
class ScoreboardRow:
    """One parsed row of ``notebooks/CLAIMS.md``."""

    claim: str
    status: str
    notebook: str
    cell: str
    mean: float
    std: float
    min: float
    max: float
    n: int
    effect: str
    control: str


_NUM = r"(-?[0-9.]+(?:e[-+]?[0-9]+)?)"
_ROW = re.compile(
    r"^\|\s*(?P<claim>[A-Z][0-9])\s*\|\s*(?P<status>[a-z ]+?)\s*\|\s*`(?P<notebook>[^`]+)`\s*"
    r"cell\s*`(?P<cell>[^`]+)`\s*\|\s*"
    rf"{_NUM} ± {_NUM} \({_NUM} … {_NUM}\), (?P<n>[0-9]+) seeds\s*\|"
    r"\s*(?P<effect>[^|]*?)\s*\|\s*(?P<control>[^|]*?)\s*\|\s*$"
)


def scoreboard_row(result: ClaimResult, notebook: str, cell: str) -> str:
    """The markdown table row for ``result``, recorded in ``notebook`` (stem) cell ``cell``."""
    return (
        f"| {result.claim} | {result.status} | `{notebook}` cell `{cell}` | {result.summary} | "
        f"{result.effect} | {result.control} |"
    )


def read_scoreboard(text: str) -> list[ScoreboardRow]:
    """Every claim row of a scoreboard table (rows that start with a claim id).

    Raises ValueError for a row that starts like a claim row but does not parse.
    """
    rows = []
    for line in text.splitlines():
        if not re.match(r"^\|\s*[A-Z][0-9]\s*\|", line):
            continue
        m = _ROW.match(line)
        if m is None:
            raise ValueError(f"scoreboard row does not parse: {line!r}")
        mean, std, lo, hi = (float(v) for v in m.groups()[4:8])
        rows.append(
            ScoreboardRow(
                m["claim"], m["status"], m["notebook"], m["cell"], mean, std, lo, hi,
                int(m["n"]), m["effect"], m["control"],
            )
        )  # fmt: skip
    return rows


def _recording_cell(notebook: Path, claim: str) -> str:
    """The id of the cell of ``notebook`` that calls ``record_claim("<claim>", ...)``."""
    call = re.compile(rf'record_claim\(\s*"{claim}"')
    for cell in json.loads(notebook.read_text())["cells"]:
        if call.search("".join(cell["source"])):
            return str(cell.get("id", "?"))
    return "?"


def main(argv: Sequence[str]) -> int:
    """Print the scoreboard rows for the records under ``argv[0]`` (see the module docstring)."""
    if not argv:
        print("usage: python -m explorer.claims CLAIMS_DIR [NOTEBOOKS_DIR]", file=sys.stderr)
        return 2
    root = Path(argv[0])
    notebooks = Path(argv[1]) if len(argv) > 1 else Path("notebooks")
    found = {}
    for path in sorted(root.glob("*/*.json")):
        result = ClaimResult.from_json(path.read_text())
        nb = path.parent.name
        found[result.claim] = scoreboard_row(
            result, nb, _recording_cell(notebooks / f"{nb}.ipynb", result.claim)
        )
    for claim in CLAIM_IDS:
        if claim in found:
            print(found[claim])
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
