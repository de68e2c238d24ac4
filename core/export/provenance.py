"""provenance.json: what an export was made from, so a table or subset can be traced back.

A metric table in a paper or a clip subset handed to annotators is only reproducible with
the workspace it came from, the filter, every run's full configuration (model revision,
prompt text, N, temperature, seed, package versions: `runs.config`), the human reference,
the conventions the numbers were computed under (`Conventions.to_dict()`: preset name,
overrides and every field; two tables from one workspace differ when these do) and the
software versions. All of it is read inside the export's snapshot, so the counts
describe the same state as the exported rows.
"""

from __future__ import annotations

import platform
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from ambiscope.core.conventions import Conventions, resolve
from ambiscope.core.reference.reliability import reliability_record
from ambiscope.core.versions import ambiscope_version, package_versions
from ambiscope.db import Dataset, Run, Workspace

PROVENANCE_FILE = "provenance.json"


def run_record(run: Run) -> dict[str, Any]:
    """A run row as provenance: every column, the full config included."""
    return {
        "id": run.id,
        "label": run.label,
        "dataset_id": run.dataset_id,
        "name": run.name,
        "model": run.model,
        "revision": run.revision,
        "backend": run.backend,
        "prompt_template": run.prompt_template,
        "prompt_text": run.prompt_text,
        "mode": run.mode,
        "n": run.n,
        "temperature": run.temperature,
        "top_p": run.top_p,
        "search": run.search,
        "seed": run.seed,
        "verifier": run.verifier,
        "created_at": run.created_at,
        "config": run.config,
    }


def dataset_record(ws: Workspace, ds: Dataset) -> dict[str, Any]:
    return {
        "id": ds.id,
        "name": ds.name,
        "format": ds.format,
        "root": ds.root,
        "label_set": list(ds.label_set),
        "votes_version": ds.votes_version,
        "import_options": ds.options,
        "human_reference": ws.human_state(ds.id),
        # human-ds / human-mace: each stored fit's settings, votes version and staleness
        "reliability": reliability_record(ws, ds),
    }


def build_provenance(
    ws: Workspace,
    *,
    export: str,
    datasets: Sequence[Dataset],
    runs: Sequence[Run],
    filter_text: str | None = None,
    options: dict[str, Any] | None = None,
    counts: dict[str, Any] | None = None,
    warnings: Sequence[str] = (),
    conventions: Conventions | None = None,
) -> dict[str, Any]:
    """The provenance record of one export (call inside the export's snapshot);
    `conventions` default to the workspace's (what an export without --preset used)."""
    return {
        "ambiscope": ambiscope_version(),
        "export": export,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": sys.argv[1:] if sys.argv and sys.argv[0].endswith("ambiscope") else None,
        "workspace": {"path": str(ws.path.resolve()), "schema_version": ws.schema_version},
        "filter": filter_text or "",
        "options": options or {},
        "conventions": (conventions or resolve(ws.get_meta)).to_dict(),
        "datasets": [dataset_record(ws, ws.get_dataset(ds.id)) for ds in datasets],
        "runs": [run_record(run) for run in runs],
        "counts": counts or {},
        "warnings": list(warnings),
        "environment": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "packages": package_versions(("numpy", "scipy", "matplotlib", "click")),
        },
    }
