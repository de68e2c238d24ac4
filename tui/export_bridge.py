"""Exports from the TUI: the current filter as a subset, or the metric tables.

core/export (audiofolder, Label Studio, LaTeX tables, provenance) is being built in
parallel; until its entry points exist this module writes the subset as CSV/JSONL of the
browser rows and the metric tables as CSV/JSON/Markdown, so the dialog is useful today
and switches to the richer formats by itself when `ambiscope.core.export` provides them.
"""

from __future__ import annotations

import csv
import importlib
import json
from pathlib import Path
from typing import Any

from ambiscope.core.browse.query import BrowseQuery
from ambiscope.tui import data
from ambiscope.tui.screens.modals import ExportRequest

FALLBACK_SUBSET = ("csv", "jsonl")
FALLBACK_METRICS = ("csv", "json", "md")


def _core_subset() -> Any | None:
    """ambiscope.core.export.subset when it provides SUBSET_FORMATS and export_subset."""
    try:
        module = importlib.import_module("ambiscope.core.export.subset")
    except Exception:
        return None
    if hasattr(module, "SUBSET_FORMATS") and hasattr(module, "export_subset"):
        return module
    return None


def formats() -> tuple[list[str], list[str]]:
    module = _core_subset()
    subset = list(module.SUBSET_FORMATS) if module is not None else list(FALLBACK_SUBSET)
    return subset, list(FALLBACK_METRICS)


def subset_is_directory() -> bool:
    """core/export writes a folder (data + provenance); the fallback writes one file."""
    return _core_subset() is not None


def export(
    access: data.WorkspaceAccess,
    request: ExportRequest,
    query: BrowseQuery,
    include_own: bool = False,
) -> tuple[Path, int]:
    """Write the export; returns (path, number of clips or metric rows)."""
    target = Path(request.path).expanduser()
    module = _core_subset()
    if request.what == "subset":
        if module is not None:
            opts = module.SubsetOptions(
                where=query.filter_text,
                format=request.fmt,
                runs=(query.run_id,) if query.run_id is not None else (),
                strategies=(query.strategy,) if query.strategy else (),
            )
            with access.writer() as ws:  # it may refresh the human cache first
                result = module.export_subset(ws, target, opts)
            return Path(result.out), int(result.exported)
        return target, data.export_rows_fallback(access, query, target, request.fmt)
    rows = data.evaluate_rows(access, include_own)
    write_metric_table(rows, target, request.fmt)
    return target, len(rows)


def write_metric_table(rows: list[dict[str, Any]], target: Path, fmt: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    keys = list(dict.fromkeys(k for r in rows for k in r))
    if fmt == "json":
        target.write_text(json.dumps(rows, indent=2, default=_plain) + "\n", encoding="utf-8")
    elif fmt == "csv":
        with target.open("w", encoding="utf-8", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=keys)
            writer.writeheader()
            for r in rows:
                writer.writerow({k: _plain(r.get(k)) for k in keys})
    elif fmt == "md":
        lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
        lines += ["| " + " | ".join(_cell(r.get(k)) for k in keys) + " |" for r in rows]
        target.write_text("\n".join(lines) + "\n", encoding="utf-8")
    else:
        raise ValueError(f"unknown metric table format {fmt!r}")


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    return value


def _cell(value: Any) -> str:
    value = _plain(value)
    if isinstance(value, float):
        return f"{value:.4f}"
    return "" if value is None else str(value)
