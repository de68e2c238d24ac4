"""The layers of DESIGN.md hold at import time, not only in the import graph.

`lint-imports` (pyproject.toml, run by `make test`) checks the static graph; these tests
import the headless packages in a fresh interpreter and look at what actually got loaded,
so a registry entry or an `__init__` that pulls the UI or torch in at import is caught
too (the way harlequin checks its headless modules).
"""

from __future__ import annotations

import json
import subprocess
import sys

UI = ("textual", "click", "textual_serve")
HEAVY = ("torch", "transformers")


def _probe(code: str) -> dict[str, list[str]]:
    """Run `code` in a fresh interpreter; it may fill the list `report`. Returns the
    top-level packages left in sys.modules and `report`."""
    tail = (
        "\nimport json, sys\n"
        "print(json.dumps({'modules': sorted({m.split('.')[0] for m in sys.modules}),"
        " 'report': report}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", "report = []\n" + code + tail],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_core_and_db_packages_load_no_ui_and_no_torch() -> None:
    loaded = _probe("import ambiscope.core, ambiscope.db")["modules"]
    assert not [m for m in (*UI, *HEAVY) if m in loaded]


def test_every_core_and_db_module_imports_without_ui() -> None:
    """Import every module of core and db: none may pull click or textual in.

    Only the model backends (core/alm) may load torch; every other module must not, so
    the metrics, the TUI's data layer and `ambiscope --help` stay fast.
    """
    result = _probe(
        "import importlib, pkgutil, sys\n"
        "import ambiscope.core, ambiscope.db\n"
        "for pkg in (ambiscope.core, ambiscope.db):\n"
        "    for info in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + '.'):\n"
        "        had = 'torch' in sys.modules\n"
        "        importlib.import_module(info.name)\n"
        "        if not had and 'torch' in sys.modules:\n"
        "            report.append(info.name)\n"
    )
    assert not [m for m in UI if m in result["modules"]]
    assert all(".alm." in name for name in result["report"]), result["report"]


def test_listing_registries_loads_no_ui_and_no_torch() -> None:
    """CLI choices and TUI dropdowns read every registry's names: that must stay light."""
    result = _probe(
        "from ambiscope.core.alm import BACKENDS\n"
        "from ambiscope.core.corpora import FORMATS\n"
        "from ambiscope.core.export import SUBSET_FORMATS, TABLE_FORMATS\n"
        "from ambiscope.core.jobs.kinds import JOB_KINDS\n"
        "from ambiscope.core.metrics import METRICS\n"
        "from ambiscope.core.reference import REFERENCES\n"
        "from ambiscope.core.scaling.strategies import STRATEGIES\n"
        "for r in (BACKENDS, FORMATS, SUBSET_FORMATS, TABLE_FORMATS, JOB_KINDS, METRICS,\n"
        "          REFERENCES, STRATEGIES):\n"
        "    report.append([r.kind, list(r.names())])\n"
    )
    assert not [m for m in (*UI, *HEAVY) if m in result["modules"]]
    assert all(names for _, names in result["report"]), result["report"]
