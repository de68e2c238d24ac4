"""`--calibrate-on SPLIT`: the benchmark table's members, calibrated on one split.

Each (run, strategy) gets its own map (ambiscope.core.metrics.calibration), fitted on its
clips of SPLIT against the reference distributions, and the table then reports *only the
other clips*, twice: the raw member (strategy ``vote``) and the calibrated one (strategy
``vote+cal``), on identical clips, so their bootstrap resamples are shared and the paired
test of a ``+cal`` row is against the same strategy uncalibrated. Reporting on the fitting
clips would flatter the map (it was chosen to fit them), so they never appear.

The split is checked before the snapshot (`check_split`): a dataset without it is a
one-line error listing the splits it has. The selection (--where, --run, --strategy) is
applied first; the map is fitted on the selected clips of the split.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from ambiscope.core.export._common import ExportError
from ambiscope.core.export.data import MemberData
from ambiscope.core.metrics.calibration import (
    CALIBRATION_EPS,
    CALIBRATIONS,
    fit_calibration,
)
from ambiscope.db import Dataset, Workspace

CAL_SUFFIX = "+cal"
"""Appended to a strategy's name for its calibrated member."""
DEFAULT_SPLIT = "train"
"""What the TUI's toggle fits on when every dataset has it (`default_split`)."""


def calibrated_name(strategy: str) -> str:
    return strategy + CAL_SUFFIX


def raw_name(strategy: str) -> str | None:
    """The uncalibrated strategy of a ``+cal`` member; None for a raw one."""
    return strategy[: -len(CAL_SUFFIX)] if strategy.endswith(CAL_SUFFIX) else None


def check_method(method: str) -> str:
    if method not in CALIBRATIONS:
        raise ExportError(
            f"--calibration must be one of {', '.join(CALIBRATIONS.names())}, got {method!r}"
        )
    return method


def splits_of(ws: Workspace, ds: Dataset) -> list[str]:
    """The dataset's non-empty split names, sorted."""
    rows = ws.conn.execute(
        "SELECT DISTINCT split FROM clips WHERE dataset_id = ? AND coalesce(split, '') <> '' "
        "ORDER BY split",
        (ds.id,),
    ).fetchall()
    return [r[0] for r in rows]


def check_split(ws: Workspace, datasets: Sequence[Dataset], split: str) -> None:
    """Every selected dataset has clips in `split` (else a one-line error naming those it has)."""
    for ds in datasets:
        present = splits_of(ws, ds)
        if split not in present:
            raise ExportError(
                f"--calibrate-on {split}: dataset {ds.name!r} has no clips in split "
                f"{split!r} (splits present: {', '.join(present) or 'none'})"
            )


def default_split(ws: Workspace, datasets: Sequence[Dataset]) -> str:
    """The split a calibration toggle fits on: `train` when every dataset has it, else the
    first split (alphabetically) that every dataset has; a one-line error when they share
    none."""
    common = None
    for ds in datasets:
        present = splits_of(ws, ds)
        common = present if common is None else [s for s in common if s in present]
    if not common:
        raise ExportError("no split common to every dataset to calibrate on")
    return DEFAULT_SPLIT if DEFAULT_SPLIT in common else common[0]


def _subset(member: MemberData, keep: np.ndarray) -> MemberData:
    return replace(
        member,
        rows=member.rows[keep],
        Q=member.Q[keep],
        n_invalid=member.n_invalid[keep],
        n_candidates=member.n_candidates[keep],
    )


def calibrate_members(
    members: Sequence[MemberData], split: str, method: str, warnings: list[str]
) -> tuple[list[MemberData], dict[str, Any]]:
    """(raw and ``+cal`` members on the clips outside `split`, the provenance record).

    A member with no clips in the split is reported raw with a warning; one with no clips
    outside it is left out with a warning. No fitting clip, or nothing left to report,
    anywhere in the selection is an error naming the splits the compared clips are in.
    """
    check_method(method)
    out: list[MemberData] = []
    fits: list[dict[str, Any]] = []
    for m in members:
        in_split = m.data.columns["split"][m.rows] == split
        label = f"run {m.run.id} {m.strategy}"
        if in_split.all():
            warnings.append(f"{label}: every clip is in split {split!r}, nothing to report")
            continue
        held_out = _subset(m, ~in_split)
        out.append(held_out)
        if not in_split.any():
            warnings.append(f"{label}: no clips in split {split!r}, reported uncalibrated")
            continue
        fit = fit_calibration(method, m.P[in_split], m.Q[in_split])
        if fit.params.get("at_bound"):
            warnings.append(
                f"{label}: the fitted temperature {fit.params['temperature']:g} is at the "
                "search bound (the model's distributions tell the fit little)"
            )
        out.append(replace(held_out, strategy=calibrated_name(m.strategy), Q=fit.apply(held_out.Q)))
        record = {"dataset": m.data.dataset.name, "run": m.run.id, "strategy": m.strategy}
        fits.append({**record, **fit.to_dict(), "n_reported": len(held_out.rows)})
    _check_usable(members, split, fits, out)
    record = {
        "method": method,
        "split": split,
        "eps": CALIBRATION_EPS,
        "objective": "mean cross-entropy to the reference distributions (bits)",
        "reported_on": f"clips not in split {split!r}",
        "fits": fits,
    }
    return out, record


def _check_usable(
    members: Sequence[MemberData], split: str, fits: list[dict[str, Any]], out: list[MemberData]
) -> None:
    if fits and out:
        return
    present = sorted({str(s) for m in members for s in m.data.columns["split"][m.rows]} - {""})
    where = f"(splits of the compared clips: {', '.join(present) or 'none'})"
    if not out:
        raise ExportError(
            f"--calibrate-on {split}: every compared clip is in split {split!r}, "
            f"nothing left to report on {where}"
        )
    raise ExportError(f"--calibrate-on {split}: no compared clips in split {split!r} {where}")


def calibration_note(method: str, split: str, tested: bool) -> str:
    """The sentence every table format carries when its rows are calibrated (`tested`:
    the table has paired bootstrap tests)."""
    test = " and tested against the same strategy uncalibrated" if tested else ""
    return (
        f"+cal rows: {method} scaling fitted per run x strategy on split {split!r} against "
        f"the reference distributions (parameters in provenance){test}; every row reports "
        f"the clips outside {split!r} only"
    )
