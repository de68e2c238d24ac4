"""`ambiscope queue`: the clips most worth an audit (ambiscope.core.browse.priority)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import click

from ambiscope.tui.cli.options import FILTER_HELP, db_option

FORMATS = ("table", "csv", "json")
COLUMNS = (
    "rank",
    "key",
    "dataset",
    "priority",
    "divergence",
    "strategies",
    "raters",
    "majority",
    "norm_entropy",
    "model_label",
    "js",
)
"""Fields of each queue entry, in the order csv and json give them."""
_TABLE = (  # (field, header) of the table format
    ("rank", "#"),
    ("key", "key"),
    ("priority", "priority"),
    ("divergence", "divergence"),
    ("strategies", "strategies"),
    ("raters", "raters"),
    ("majority", "human"),
    ("norm_entropy", "H"),
    ("model_label", "model"),
    ("js", "JS"),
)


@click.command("queue")
@click.option(  # 50: audit_queue.DEFAULT_TOP, not imported here (no numpy for --help)
    "--top", type=click.IntRange(min=1), default=50, show_default=True, help="Clips listed."
)
@click.option("--where", help=FILTER_HELP)
@click.option("--dataset", "-d", help="Only this dataset (default: every dataset).")
@click.option(
    "--run", "run_id", type=int, help="Run id (default: the newest run with predictions)."
)
@click.option("--strategy", help="Strategy of the run (default: the run's preferred one).")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
@db_option
def queue(
    top: int,
    where: str | None,
    dataset: str | None,
    run_id: int | None,
    strategy: str | None,
    fmt: str,
    db: Path,
) -> None:
    """The audit queue: the clips most worth an audit, by descending priority.

    Priority (in [0, 1]) weighs the model's JS divergence from the human distribution by
    how sure the humans are, plus how much the run's strategies disagree with each other
    and how much the raters do; every format names the formula and its weights. Without
    a run only the raters' part ranks. The TUI walks the same queue (README: Audit queue).
    """
    from ambiscope.core.browse.audit_queue import audit_queue
    from ambiscope.db import Workspace

    with Workspace.open(db) as ws:  # read-write, as `metrics`: applies pending migrations
        dataset_id = ws.get_dataset(dataset).id if dataset else None
        run, chosen = _run_and_strategy(ws, dataset_id, run_id, strategy)
        result = audit_queue(
            ws.conn,
            top=top,
            where=where,
            dataset_id=dataset_id,
            run_id=run.id if run else None,
            strategy=chosen,
        )
    about = {
        "run": run.id if run else None,
        "run_name": (run.name or run.model) if run else None,
        "strategy": chosen,
        "where": where or "",
        "matched": result.matched,
        "weights": dict(result.weights),
        "formula": result.formula,
    }
    entries = [{c: getattr(e, c) for c in COLUMNS} for e in result.entries]
    click.echo({"table": _table, "csv": _csv, "json": _json}[fmt](about, entries), nl=False)


def _run_and_strategy(
    ws: Any, dataset_id: int | None, run_id: int | None, strategy: str | None
) -> tuple[Any, str | None]:
    """The run (given, else the newest with predictions in the dataset) and its strategy
    (given, else the preferred one); (None, None) when the workspace has no predictions."""
    from ambiscope.core.scaling.strategies import preferred_strategy

    if run_id is not None:
        run = ws.get_run(run_id)
        if dataset_id is not None and run.dataset_id != dataset_id:
            raise ValueError(f"--run {run_id} is a run of another dataset than --dataset")
    else:
        run = next((r for r in reversed(ws.runs(dataset_id)) if ws.strategies(r.id)), None)
        if run is None:
            if strategy is not None:
                raise ValueError("--strategy needs a run with predictions; the workspace has none")
            return None, None
    names = ws.strategies(run.id)
    if strategy is None:
        strategy = preferred_strategy(names) or (names[0] if names else None)
    if strategy not in names:
        listed = ", ".join(names) or "none yet"
        raise ValueError(f"run #{run.id} has no strategy {strategy!r} (strategies: {listed})")
    return run, strategy


def _number(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _table(about: dict[str, Any], entries: list[dict[str, Any]]) -> str:
    run = (
        f"run #{about['run']} {about['run_name']} · {about['strategy']}"
        if about["run"]
        else ("no run (raters only)")
    )
    where = f" · where {about['where']}" if about["where"] else ""
    lines = [
        f"audit queue: {run}{where} · top {len(entries)} of {about['matched']:,} clips",
        about["formula"],
    ]
    cells = [[h for _, h in _TABLE]] + [[_number(e[f]) for f, _ in _TABLE] for e in entries]
    widths = [max(len(row[i]) for row in cells) for i in range(len(_TABLE))]
    for row in cells:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines) + "\n"


def _csv(about: dict[str, Any], entries: list[dict[str, Any]]) -> str:
    """One comment line naming the formula and its weights, then a header and the rows."""
    out = io.StringIO()
    out.write(f"# {about['formula']}\n")
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(entries)
    return out.getvalue()


def _json(about: dict[str, Any], entries: list[dict[str, Any]]) -> str:
    return json.dumps({**about, "clips": entries}, indent=2) + "\n"
