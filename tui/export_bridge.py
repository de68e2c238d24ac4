"""Exports from the TUI: the current filter as a clip subset, or the benchmark table.

The TUI writes exactly what the command line writes: a subset through
`ambiscope.core.export.subset.export_subset` (a folder with the data and its provenance,
as `ambiscope export subset`), a table through `compute_benchmark` and `render` (plus
`FILE.provenance.json`, as `ambiscope metrics -o FILE`). The dialog offers the formats
registered in `ambiscope.core.export.SUBSET_FORMATS` and `TABLE_FORMATS`, so a new format
appears here by being registered. core/export is imported when an export is asked for,
not when the app starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ambiscope.core.browse.query import BrowseQuery
from ambiscope.db.access import WorkspaceAccess
from ambiscope.tui import data


@dataclass(frozen=True)
class ExportRequest:
    """What the export dialog asks for."""

    what: str  # "subset" | "metrics"
    fmt: str
    path: str


def subset_formats() -> list[str]:
    from ambiscope.core.export import SUBSET_FORMATS

    return list(SUBSET_FORMATS.names())


def table_formats() -> list[str]:
    from ambiscope.core.export import TABLE_FORMATS

    return list(TABLE_FORMATS.names())


def export(
    access: WorkspaceAccess,
    request: ExportRequest,
    query: BrowseQuery,
    include_own: bool = False,
    bootstrap: int = 200,
) -> tuple[Path, int]:
    """Write the export; returns (path, number of clips or table rows).

    core/export brings the human caches to the dataset's default reference first; the
    TUI's own-votes setting is restored afterwards, so the browser's human columns stay
    what the researcher chose.
    """
    target = Path(request.path).expanduser()
    try:
        if request.what == "subset":
            return _export_subset(access, request.fmt, query, target)
        return _export_table(access, request.fmt, bootstrap, target)
    finally:
        data.refresh_human_cache(access, include_own)


def _export_subset(
    access: WorkspaceAccess, fmt: str, query: BrowseQuery, target: Path
) -> tuple[Path, int]:
    from ambiscope.core.export.subset import SubsetOptions, export_subset

    options = SubsetOptions(
        where=query.filter_text,
        format=fmt,
        runs=(query.run_id,) if query.run_id is not None else (),
        strategies=(query.strategy,) if query.strategy else (),
    )
    with access.writer() as ws:
        result = export_subset(ws, target, options)
    return Path(result.out), int(result.exported)


def _export_table(
    access: WorkspaceAccess, fmt: str, bootstrap: int, target: Path
) -> tuple[Path, int]:
    from ambiscope.core.export.tables import TableOptions, compute_benchmark, write_table

    with access.writer() as ws:
        table, provenance = compute_benchmark(ws, options=TableOptions(bootstrap=bootstrap))
    write_table(table, fmt, target, provenance)
    return target, len(table.rows)
