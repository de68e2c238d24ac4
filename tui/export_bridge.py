"""Exports from the TUI: the current filter as a clip subset, or the benchmark table.

The TUI writes exactly what the command line writes: a subset through
`ambiscope.core.export.subset.export_subset` (a folder with the data and its provenance,
as `ambiscope export subset`), a table through `compute_benchmark` and `render` (plus
`FILE.provenance.json`, as `ambiscope metrics -o FILE`). Both cover what the dialog says:
the browser's filter, run and strategy (`ambiscope metrics --where F --run R --strategy S`,
so the table's strategy is compared with the run's baseline and carries its markers).
The dialog offers the formats registered in `ambiscope.core.export.SUBSET_FORMATS` and
`TABLE_FORMATS`, so a new format appears here by being registered. core/export is imported
when an export is asked for, not when the app starts.

The dialog has an overwrite checkbox where the command line has `--force`, so core's
messages are reworded to name the checkbox (`check_target` refuses before any work).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ambiscope.core.browse.query import BrowseQuery
from ambiscope.db.access import WorkspaceAccess
from ambiscope.tui import data

CLI_WORDS = (
    ("pass --force to replace it", "tick overwrite to replace it"),
    ("--force", "overwrite"),
    ("choose another OUT", "choose another folder"),
)


@dataclass(frozen=True)
class ExportRequest:
    """What the export dialog asks for."""

    what: str  # "subset" | "metrics"
    fmt: str
    path: str
    overwrite: bool = False  # replace an earlier export (the CLI's --force)

    @property
    def target(self) -> Path:
        return Path(self.path).expanduser()


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote: the folder or table file, and its clips or table rows."""

    path: Path
    count: int
    what: str


def subset_formats() -> list[str]:
    from ambiscope.core.export import SUBSET_FORMATS

    return list(SUBSET_FORMATS.names())


def table_formats() -> list[str]:
    from ambiscope.core.export import TABLE_FORMATS

    return list(TABLE_FORMATS.names())


def dialog_words(message: str) -> str:
    """core's command-line wording (`--force`, OUT) in the dialog's words."""
    for cli, dialog in CLI_WORDS:
        message = message.replace(cli, dialog)
    return message


def check_target(request: ExportRequest) -> str | None:
    """Why the target cannot be written as asked (None when it can), checked before any
    work so the dialog can stay open and say so."""
    target = request.target
    if not target.exists():
        return None
    if request.what == "subset":
        if not target.is_dir():
            return f"{target} exists and is not a folder"
        if any(target.iterdir()) and not request.overwrite:
            return f"{target} is not empty: tick overwrite to replace an earlier export"
        return None
    if target.is_dir():
        return f"{target} is a folder: give a file name"
    if not request.overwrite:
        return f"{target} exists: tick overwrite to replace it"
    return None


def export(
    access: WorkspaceAccess,
    request: ExportRequest,
    query: BrowseQuery,
    include_own: bool = False,
    bootstrap: int = 200,
) -> tuple[Path, int]:
    """Write the export; returns (path, number of clips or table rows).

    A table always has intervals and paired tests: `bootstrap` (the metrics screen's
    setting) when it is above 0, else the command line's default. core/export brings the
    human caches to the dataset's default reference first; the TUI's own-votes setting is
    restored afterwards, so the browser's human columns stay what the researcher chose.
    """
    from ambiscope.core.export import ExportError

    problem = check_target(request)
    if problem is not None:
        raise ExportError(problem)
    try:
        if request.what == "subset":
            return _export_subset(access, request, query)
        return _export_table(access, request, query, bootstrap)
    except ExportError as exc:
        raise ExportError(dialog_words(str(exc))) from exc
    finally:
        data.refresh_human_cache(access, include_own)


def export_result(
    access: WorkspaceAccess,
    request: ExportRequest,
    query: BrowseQuery,
    include_own: bool = False,
    bootstrap: int = 200,
) -> ExportResult:
    """`export` as the dialog's answer (what was written, for the closing toast)."""
    path, count = export(access, request, query, include_own, bootstrap)
    return ExportResult(path, count, request.what)


def _selection(query: BrowseQuery) -> tuple[tuple[int, ...], tuple[str, ...]]:
    """(runs, strategies) of the browser: the shown run and strategy, if any."""
    if query.run_id is None or query.strategy is None:
        return (), ()
    return (query.run_id,), (query.strategy,)


def _export_subset(
    access: WorkspaceAccess, request: ExportRequest, query: BrowseQuery
) -> tuple[Path, int]:
    from ambiscope.core.export.subset import SubsetOptions, export_subset

    runs, strategies = _selection(query)
    options = SubsetOptions(
        where=query.filter_text,
        format=request.fmt,
        runs=runs,
        strategies=strategies,
        force=request.overwrite,
    )
    with access.writer() as ws:
        result = export_subset(ws, request.target, options)
    return Path(result.out), int(result.exported)


def _export_table(
    access: WorkspaceAccess, request: ExportRequest, query: BrowseQuery, bootstrap: int
) -> tuple[Path, int]:
    from ambiscope.core.export.tables import TableOptions, compute_benchmark, write_table

    runs, strategies = _selection(query)
    options = TableOptions(bootstrap=bootstrap) if bootstrap > 0 else TableOptions()
    with access.writer() as ws:
        table, provenance = compute_benchmark(
            ws,
            runs=runs,
            strategies=strategies,
            where=query.filter_text or None,
            options=options,
        )
    write_table(table, request.fmt, request.target, provenance)
    return request.target, len(table.rows)
