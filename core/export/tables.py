"""The benchmark table: models x TTS strategies x corpora, by ambiguity level, with CIs.

One row per (dataset, run, strategy, group): the metric means on the clips with both a
human distribution and a prediction, 95% bootstrap CIs over clips, and a paired bootstrap
comparison with the run's baseline strategy on the same clips (`<metric>_diff`,
`<metric>_p`). The default baseline is `single` (the first answer, i.e. N = 1); cot-mode
runs have `cot` instead, which is then used (both are declared `first_answer` with their
strategy). Resamples are shared across strategies on the same clips
(core/metrics/bootstrap.py), which is what makes 27 models x strategies on 150k clips with
1000 resamples a matter of seconds.

Formats (`TABLE_FORMATS`, one decorated writer each): `table` (terminal), `csv`, `json`,
`md` (Markdown: best value per column in bold), `latex` (a booktabs table: best value per
column in \\textbf). "Best" is judged within a dataset and group, on the displayed
(rounded) values, in the metric's direction; titles and directions come from each metric's
declaration (ambiscope.core.metrics.METRICS); `*` marks p < 0.05 against the baseline.
Every format names the conventions the numbers follow (a last line, the Markdown legend,
the LaTeX caption; `options.conventions` in JSON); provenance records every field.

With `calibrate_on` (`--calibrate-on SPLIT`) each (run, strategy) is also calibrated on
that split (ambiscope.core.export.calibration): every row then describes the clips outside
the split only, each strategy gets a `+cal` row beside it, tested against it, JS, BC and
ECE are always among the metrics, every format says so, and provenance holds the fitted
parameters under `calibration`.
"""

from __future__ import annotations

import csv
import io
import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from ambiscope.core.browse.filters import Filter
from ambiscope.core.conventions import Conventions, resolve
from ambiscope.core.export import TABLE_FORMATS
from ambiscope.core.export._common import ExportError, atomic_write_text, dumps
from ambiscope.core.export.calibration import (
    calibrate_members,
    calibration_note,
    check_method,
    check_split,
    raw_name,
)
from ambiscope.core.export.data import (
    DatasetData,
    MemberData,
    check_strategies,
    load_dataset,
    load_members,
    prepare_references,
    resolve_datasets,
    resolve_runs,
)
from ambiscope.core.export.provenance import build_provenance
from ambiscope.core.metrics import METRICS
from ambiscope.core.metrics.bootstrap import CohortMember, check_metrics, evaluate_cohort
from ambiscope.core.reference import REFERENCES, reference_name
from ambiscope.core.scaling.strategies import (
    approximate_strategies,
    first_answer_strategies,
    strategy_rank,
)
from ambiscope.db import Dataset, Run, Workspace

DEFAULT_METRICS: tuple[str, ...] = ("js", "bc", "r2_pearson", "accuracy", "macro_f1")
BY_CHOICES: tuple[str, ...] = ("ambiguity", "split", "gender", "speaker", "none")
LEVEL_ORDER: tuple[str, ...] = ("low", "medium", "high")
ALL_LABEL = "all"
SIGNIFICANCE = 0.05
DEFAULT_CAPTION = "Model vs human emotion distributions."
CALIBRATED_METRICS: tuple[str, ...] = ("js", "bc", "ece")
"""Always in a calibrated table: what calibration is meant to move."""

GROUP_TITLES = {
    "ambiguity": "Ambiguity",
    "split": "Split",
    "gender": "Gender",
    "speaker": "Speaker",
}


@dataclass(frozen=True)
class TableOptions:
    """How the table is computed (all of it goes into provenance).

    conventions: the human reference's and the metrics' rules; `plan_metrics` fills in
    the workspace's default for None. calibrate_on: the split each (run, strategy) is
    calibrated on with the `calibration` method (None: raw distributions only).
    """

    metrics: tuple[str, ...] = DEFAULT_METRICS
    by: str = "ambiguity"
    bootstrap: int = 1000
    seed: int = 0
    alpha: float = 0.05
    baseline: str | None = "single"
    reference: str = "human"
    conventions: Conventions | None = None
    calibrate_on: str | None = None
    calibration: str = "temperature"

    def __post_init__(self) -> None:
        metrics = tuple(self.metrics)
        if self.calibrate_on is not None:
            check_method(self.calibration)
            metrics += tuple(m for m in CALIBRATED_METRICS if m not in metrics)
        object.__setattr__(self, "metrics", check_metrics(metrics))
        if self.by not in BY_CHOICES:
            raise ExportError(f"--by must be one of {', '.join(BY_CHOICES)}, got {self.by!r}")
        if self.bootstrap < 0:
            raise ExportError(f"--bootstrap must be >= 0, got {self.bootstrap}")
        if not 0 < self.alpha < 1:
            raise ExportError(f"alpha must be in (0, 1), got {self.alpha}")
        reference_name(self.reference)

    def to_dict(self) -> dict[str, Any]:
        """Plain values for JSON and provenance (conventions as `Conventions.to_dict`)."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["metrics"] = list(self.metrics)
        data["conventions"] = None if self.conventions is None else self.conventions.to_dict()
        return data

    @property
    def conventions_label(self) -> str:
        """How the table names its conventions; unresolved ones are computed as the
        ambiscope preset (`evaluate_cohort`'s default)."""
        return (self.conventions or Conventions()).label()


@dataclass
class BenchmarkTable:
    options: TableOptions
    rows: list[dict[str, Any]]
    warnings: list[str] = field(default_factory=list)

    @property
    def columns(self) -> list[str]:
        head = ["dataset", "run", "run_label", "model", "strategy", "baseline", "group", "n"]
        tail = [f"{m}{s}" for m in self.options.metrics for s in ("", "_lo", "_hi", "_diff", "_p")]
        return head + tail


# ---------------------------------------------------------------------------- building
def baseline_for(strategies: set[str], baseline: str | None) -> str | None:
    """The run's baseline strategy: as asked, or the other first-answer name (single/cot)."""
    if baseline is None or baseline in strategies:
        return baseline
    first = first_answer_strategies()
    if baseline in first:
        return next((s for s in first if s in strategies), None)
    return None


@dataclass
class _Cohort:
    """Members on identical clips: their bootstrap resamples are shared."""

    data: DatasetData
    rows: np.ndarray
    members: list[MemberData] = field(default_factory=list)
    pairs: list[tuple[int, int]] = field(default_factory=list)
    pair_owner: list[MemberData] = field(default_factory=list)
    report: bool = True  # False: an intersection cohort only used for paired tests


def _restrict(member: MemberData, rows: np.ndarray) -> MemberData:
    keep = np.isin(member.rows, rows)
    return MemberData(
        member.data,
        member.run,
        member.strategy,
        member.rows[keep],
        member.Q[keep],
        member.n_invalid[keep],
        member.n_candidates[keep],
    )


def _cohorts(members: Sequence[MemberData], baseline: str | None) -> list[_Cohort]:
    cohorts: dict[tuple[int, bytes], _Cohort] = {}
    where: dict[int, tuple[_Cohort, int]] = {}
    for m in members:
        key = (m.data.dataset.id, m.rows.tobytes())
        cohort = cohorts.setdefault(key, _Cohort(m.data, m.rows))
        where[id(m)] = (cohort, len(cohort.members))
        cohort.members.append(m)
    extra: list[_Cohort] = []
    by_run: dict[int, dict[str, MemberData]] = defaultdict(dict)
    for m in members:
        by_run[m.run.id][m.strategy] = m
    for strategies in by_run.values():
        base_name = baseline_for(set(strategies), baseline)
        for name, m in strategies.items():
            against = raw_name(name) or base_name  # a +cal member: its raw strategy
            if against is None or against == name or against not in strategies:
                continue
            base = strategies[against]
            (c1, i1), (c2, i2) = where[id(base)], where[id(m)]
            if c1 is c2:
                c1.pairs.append((i1, i2))
                c1.pair_owner.append(m)
                continue
            common = np.intersect1d(base.rows, m.rows)
            if len(common):
                both = _Cohort(m.data, common, [_restrict(base, common), _restrict(m, common)])
                both.pairs, both.pair_owner, both.report = [(0, 1)], [m], False
                extra.append(both)
    return [*cohorts.values(), *extra]


def _evaluate(cohort: _Cohort, options: TableOptions) -> Any:
    groups = cohort.data.groups(options.by, cohort.rows)
    return evaluate_cohort(
        cohort.data.human.dist[cohort.rows],
        [CohortMember(m.Q, m.n_invalid, m.n_candidates) for m in cohort.members],
        groups,
        metrics=options.metrics,
        order=list(LEVEL_ORDER) if options.by == "ambiguity" else None,
        pairs=cohort.pairs,
        bootstrap=options.bootstrap,
        seed=options.seed,
        alpha=options.alpha,
        all_label=ALL_LABEL,
        conventions=options.conventions,
    )


def build_table(members: Sequence[MemberData], options: TableOptions) -> BenchmarkTable:
    """Evaluate aligned members (see module docstring) into table rows."""
    rows: dict[tuple[int, str], dict[str, Any]] = {}  # (id(member), group) -> row
    comparisons: dict[tuple[int, str], dict[str, dict[str, float]]] = {}
    run_strategies: dict[int, set[str]] = defaultdict(set)
    for m in members:
        run_strategies[m.run.id].add(m.strategy)
    base_names = {r: baseline_for(s, options.baseline) for r, s in run_strategies.items()}
    for cohort in _cohorts(members, options.baseline):
        result = _evaluate(cohort, options)
        if cohort.report:
            for (i, group), values in result.rows.items():
                rows[(id(cohort.members[i]), group)] = values
        for (j, group), values in result.pairs.items():
            comparisons[(id(cohort.pair_owner[j]), group)] = values
    by_id = {id(m): m for m in members}
    out = [
        _row(by_id[mid], group, values, comparisons.get((mid, group)), base_names, options)
        for (mid, group), values in rows.items()
    ]
    out.sort(key=_sort_key(options))
    return BenchmarkTable(options, out)


def _row(
    m: MemberData,
    group: str,
    values: dict[str, float],
    comparison: dict[str, dict[str, float]] | None,
    base_names: dict[int, str | None],
    options: TableOptions,
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "dataset": m.data.dataset.name,
        "run": m.run.id,
        "run_label": m.run.label,
        "model": m.run.model,
        "strategy": m.strategy,
        "baseline": raw_name(m.strategy) or base_names.get(m.run.id),
        "group": group,
        "n": int(values["n"]),
    }
    for metric in options.metrics:
        row[metric] = values[metric]
        row[f"{metric}_lo"] = values.get(f"{metric}_lo", math.nan)
        row[f"{metric}_hi"] = values.get(f"{metric}_hi", math.nan)
        entry = (comparison or {}).get(metric, {})
        row[f"{metric}_diff"] = entry.get("diff", math.nan)
        row[f"{metric}_p"] = entry.get("p", math.nan)
    return row


def _sort_key(options: TableOptions) -> Any:
    def key(row: dict[str, Any]) -> tuple[Any, ...]:
        group = row["group"]
        if group == ALL_LABEL:
            g: tuple[int, str] = (2, "")
        elif options.by == "ambiguity" and group in LEVEL_ORDER:
            g = (0, f"{LEVEL_ORDER.index(group)}")
        else:
            g = (1, str(group))
        return (row["dataset"], g, row["run"], *_strategy_order(row["strategy"]))

    return key


def _strategy_order(name: str) -> tuple[tuple[int, str], bool]:
    """Registration order, each `+cal` strategy right after its raw one."""
    raw = raw_name(name)
    return strategy_rank(raw or name), raw is not None


@dataclass(frozen=True)
class MetricsPlan:
    """A validated selection: checked before the snapshot so bad input fails early."""

    datasets: tuple[Dataset, ...]
    runs: tuple[Run, ...]
    strategies: tuple[str, ...]
    where: str | None
    reference: str
    options: TableOptions
    # `where` parsed, its values checked against the selected datasets (None: no filter)
    flt: Filter | None = None


def plan_metrics(
    ws: Workspace,
    *,
    datasets: Sequence[str] = (),
    runs: Sequence[int] = (),
    strategies: Sequence[str] = (),
    where: str | None = None,
    options: TableOptions | None = None,
) -> MetricsPlan:
    """Validate the selection and refresh stale human caches (call outside a snapshot)."""
    from ambiscope.core.browse.query import checked_filter

    options = options or TableOptions()
    if options.conventions is None:
        options = replace(options, conventions=resolve(ws.get_meta))
    reference = reference_name(options.reference)
    dss = resolve_datasets(ws, datasets)
    selected = resolve_runs(ws, dss, runs)
    dss = [ds for ds in dss if any(r.dataset_id == ds.id for r in selected)]
    if options.calibrate_on is not None:
        check_split(ws, dss, options.calibrate_on)
    check_strategies(ws, selected, strategies)
    strategies = _with_baseline(ws, selected, strategies, options.baseline)
    within = dss[0].id if len(dss) == 1 else None
    flt = checked_filter(ws.conn, where, within)  # a bad filter fails before any work
    prepare_references(ws, dss, options.conventions)
    return MetricsPlan(
        tuple(dss),
        tuple(selected),
        tuple(strategies),
        where,
        reference,
        options,
        None if flt.is_empty() else flt,
    )


def read_metrics(
    ws: Workspace, plan: MetricsPlan, *, export: str = "metrics"
) -> tuple[list[MemberData], dict[str, Any]]:
    """(aligned members, provenance); call inside `ws.snapshot()`."""
    from ambiscope.core.browse.query import select_clip_ids

    warnings: list[str] = []
    members: list[MemberData] = []
    for ds in plan.datasets:
        data = load_dataset(ws, ds, plan.reference, plan.options.conventions)
        clip_ids = None
        if plan.flt is not None:
            selected = select_clip_ids(
                ws.conn,
                plan.flt,
                dataset_id=ds.id,
                run_id=plan.runs[0].id if plan.runs else None,
                strategy=plan.strategies[0] if plan.strategies else None,
            )
            clip_ids = np.array(selected, dtype=np.int64)
        ds_runs = [r for r in plan.runs if r.dataset_id == ds.id]
        members += load_members(
            ws, data, ds_runs, plan.strategies, clip_ids=clip_ids, warnings=warnings
        )
    if not members:
        raise ExportError(
            "nothing to compare: no predictions on clips with human votes in the selection"
        )
    calibration = None
    if plan.options.calibrate_on is not None:
        members, calibration = calibrate_members(
            members, plan.options.calibrate_on, plan.options.calibration, warnings
        )
    raw = [m for m in members if raw_name(m.strategy) is None]  # +cal: derived, not read
    prov = build_provenance(
        ws,
        export=export,
        datasets=plan.datasets,
        runs=plan.runs,
        filter_text=plan.where,
        options={**_options_record(plan.options), "strategies": list(plan.strategies)},
        counts={"predictions": len(raw), "clips": _clip_counts(raw)},
        warnings=warnings,
        conventions=plan.options.conventions,
    )
    if calibration is not None:
        prov["calibration"] = calibration
    return members, prov


def _options_record(options: TableOptions) -> dict[str, Any]:
    """Table options for provenance; the conventions have their own top-level entry."""
    data = options.to_dict()
    del data["conventions"]
    return data


def _with_baseline(
    ws: Workspace, runs: Sequence[Run], strategies: Sequence[str], baseline: str | None
) -> tuple[str, ...]:
    """Asked-for strategies plus the baseline they are tested against (when it exists)."""
    if not strategies or baseline is None:
        return tuple(strategies)
    have = {s for run in runs for s in ws.strategies(run.id)}
    first = first_answer_strategies()
    wanted = (baseline, *first) if baseline in first else (baseline,)
    return tuple(dict.fromkeys([*strategies, *(s for s in wanted if s in have)]))


def compute_benchmark(
    ws: Workspace,
    *,
    datasets: Sequence[str] = (),
    runs: Sequence[int] = (),
    strategies: Sequence[str] = (),
    where: str | None = None,
    options: TableOptions | None = None,
) -> tuple[BenchmarkTable, dict[str, Any]]:
    """The benchmark table and its provenance, read from one snapshot of the workspace."""
    plan = plan_metrics(
        ws, datasets=datasets, runs=runs, strategies=strategies, where=where, options=options
    )
    with ws.snapshot():
        members, prov = read_metrics(ws, plan)
    table = build_table(members, plan.options)
    table.warnings = list(prov["warnings"])
    return table, prov


def _clip_counts(members: Sequence[MemberData]) -> dict[str, int]:
    """Distinct compared clips per dataset."""
    rows: dict[str, list[np.ndarray]] = defaultdict(list)
    for m in members:
        rows[m.data.dataset.name].append(m.rows)
    return {name: len(np.unique(np.concatenate(parts))) for name, parts in rows.items()}


# ---------------------------------------------------------------------------- formatting
Titles = Callable[[str], str]


def _title(metric: str) -> str:
    return METRICS.get(metric).title


def _latex_title(metric: str) -> str:
    declared = METRICS.get(metric)
    return declared.latex or declared.title


def _plain_title(metric: str) -> str:
    declared = METRICS.get(metric)
    return declared.plain or declared.title


def _higher(metric: str) -> bool:
    return METRICS.get(metric).higher_is_better


def _fmt(value: float, digits: int = 3) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _best(rows: Sequence[dict[str, Any]], metrics: Sequence[str]) -> set[tuple[int, str]]:
    """(row index, metric) of the best displayed value per metric within dataset x group;
    strategies computed from approximations (``likelihood~``) are never the best."""
    approximate = approximate_strategies()
    best: set[tuple[int, str]] = set()
    blocks: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, row in enumerate(rows):
        if row.get("strategy") not in approximate:
            blocks[(row["dataset"], str(row["group"]))].append(i)
    for indices in blocks.values():
        for m in metrics:
            shown = {i: float(_fmt(rows[i][m])) for i in indices if _fmt(rows[i][m]) != "n/a"}
            if len(shown) < 2:
                continue
            pick = max if _higher(m) else min
            target = pick(shown.values())
            best.update((i, m) for i, v in shown.items() if v == target)
    return best


def _significant(row: dict[str, Any], metric: str) -> bool:
    p = row.get(f"{metric}_p")
    return p is not None and math.isfinite(p) and p < SIGNIFICANCE


def _legend(table: BenchmarkTable, titles: Titles = _title, less: str = "<") -> str:
    o = table.options
    if o.bootstrap:
        ci = f"{100 * (1 - o.alpha):.0f}% CI from {o.bootstrap} bootstrap resamples over clips"
        parts = [f"Mean over clips [{ci}]"]
    else:
        parts = ["Mean over clips (no bootstrap)"]
    parts.append("best per column within dataset and group marked")
    if any(row.get("strategy") in approximate_strategies() for row in table.rows):
        parts.append("~ marks strategies computed from approximate scores (never marked best)")
    if o.baseline and o.bootstrap:
        parts.append(
            f"* p {less} {SIGNIFICANCE} (paired bootstrap vs the run's {o.baseline} strategy, "
            "same clips)"
        )
    if o.calibrate_on is not None:
        parts.append(calibration_note(o.calibration, o.calibrate_on, o.bootstrap > 0))
    if reference_name(o.reference) != "human":  # the default goes unsaid, any other is named
        name = reference_name(o.reference)
        parts.append(f"reference: {name}, {REFERENCES.meta(name)['description']}")
    arrows = ", ".join(
        f"{titles(m)} {'higher' if _higher(m) else 'lower'} is better" for m in o.metrics
    )
    return "; ".join(parts) + f". {arrows}."


def _conventions_note(table: BenchmarkTable) -> str:
    """The sentence naming the conventions, under (or in the caption of) every table."""
    return f"Conventions: {table.options.conventions_label}."


@TABLE_FORMATS.register("table", suffix=".txt")
def format_text(table: BenchmarkTable, provenance: dict[str, Any] | None = None) -> str:
    """Fixed-width terminal table: value ±CI half-width, `*` best, `†` significant."""
    metrics = table.options.metrics
    best = _best(table.rows, metrics)
    width = 15
    sw = max([10, *(len(row["strategy"]) for row in table.rows)])  # `likelihood~+cal` whole
    head = f"{'dataset':<10} {'run':<18} {'strategy':<{sw}} {'group':<8} {'n':>7} " + " ".join(
        f"{_title(m) + (' ↑' if _higher(m) else ' ↓'):>{width}}" for m in metrics
    )
    lines = [head, "-" * len(head)]
    for i, row in enumerate(table.rows):
        cells = []
        for m in metrics:
            text = _fmt(row[m])
            lo, hi = row[f"{m}_lo"], row[f"{m}_hi"]
            if text != "n/a" and math.isfinite(lo) and math.isfinite(hi):
                text += f"±{max(hi - row[m], row[m] - lo):.3f}"
            text += ("*" if (i, m) in best else " ") + ("†" if _significant(row, m) else " ")
            cells.append(f"{text:>{width}}")
        lines.append(
            f"{row['dataset'][:10]:<10} {str(row['run_label'])[:18]:<18} "
            f"{row['strategy']:<{sw}} {str(row['group'])[:8]:<8} {row['n']:>7} " + " ".join(cells)
        )
    lines.append(_legend(table).replace("marked", "marked *").replace("* p <", "† p <"))
    lines.append(f"conventions: {table.options.conventions_label}")
    return "\n".join(lines) + "\n"


@TABLE_FORMATS.register("csv", suffix=".csv")
def format_csv(table: BenchmarkTable, provenance: dict[str, Any] | None = None) -> str:
    """One line per row with every column; undefined values are empty cells."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=table.columns, lineterminator="\n")
    writer.writeheader()
    for row in table.rows:
        writer.writerow(
            {
                k: ("" if isinstance(v, float) and not math.isfinite(v) else v)
                for k, v in ((c, row.get(c)) for c in table.columns)
            }
        )
    return buf.getvalue()


@TABLE_FORMATS.register("json", suffix=".json")
def format_json(table: BenchmarkTable, provenance: dict[str, Any] | None = None) -> str:
    """Options, columns, rows, warnings and the provenance in one strict JSON document."""
    return (
        dumps(
            {
                "options": table.options.to_dict(),
                "columns": table.columns,
                "rows": table.rows,
                "warnings": table.warnings,
                "provenance": provenance,
            }
        )
        + "\n"
    )


def _header_cells(table: BenchmarkTable, titles: Titles, arrows: tuple[str, str]) -> list[str]:
    by = table.options.by
    cells = ["Dataset", "Model", "Strategy"]
    if by != "none":
        cells.append(GROUP_TITLES[by])
    cells.append("n")
    for m in table.options.metrics:
        cells.append(f"{titles(m)} {arrows[0] if _higher(m) else arrows[1]}")
    return cells


def _md_escape(text: Any) -> str:
    return (
        str(text).replace("\\", "\\\\").replace("|", "\\|").replace("*", "\\*").replace("_", "\\_")
    )


@TABLE_FORMATS.register("md", suffix=".md")
def format_markdown(table: BenchmarkTable, provenance: dict[str, Any] | None = None) -> str:
    """A pipe table: `0.123 [0.120, 0.126]`, best per column in bold, `*` significant."""
    metrics = table.options.metrics
    best = _best(table.rows, metrics)
    header = _header_cells(table, _title, ("↑", "↓"))
    n_text = len(header) - len(metrics) - 1  # text columns, then n, then the metrics
    align = [":--"] * n_text + ["--:"] * (len(header) - n_text)
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    for i, row in enumerate(table.rows):
        cells = [
            _md_escape(row["dataset"]),
            _md_escape(row["run_label"]),
            _md_escape(row["strategy"]),
        ]
        if table.options.by != "none":
            cells.append(_md_escape(row["group"]))
        cells.append(str(row["n"]))
        for m in metrics:
            value = _fmt(row[m])
            if (i, m) in best:
                value = f"**{value}**"
            if _significant(row, m):
                value += "\\*"
            lo, hi = row[f"{m}_lo"], row[f"{m}_hi"]
            if math.isfinite(lo) and math.isfinite(hi):
                value += f" [{lo:.3f}, {hi:.3f}]"
            cells.append(value)
        lines.append("| " + " | ".join(cells) + " |")
    notes = f"{_md_escape(_legend(table))}\n\n{_md_escape(_conventions_note(table))}"
    return "\n".join(lines) + "\n\n" + notes + "\n"


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def latex_escape(text: Any) -> str:
    """Escape LaTeX's special characters in free text (run names, dataset names)."""
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))


@TABLE_FORMATS.register("latex", suffix=".tex")
def format_latex(
    table: BenchmarkTable,
    provenance: dict[str, Any] | None = None,
    *,
    caption: str | None = None,
    label: str = "tab:ambiscope",
) -> str:
    """A `booktabs` table (needs \\usepackage{booktabs}); `\\midrule` between groups."""
    metrics = table.options.metrics
    best = _best(table.rows, metrics)
    header = _header_cells(table, _latex_title, ("$\\uparrow$", "$\\downarrow$"))
    n_text = len(header) - len(metrics)
    spec = "l" * (n_text - 1) + "r" + "r" * len(metrics)
    legend = latex_escape(_legend(table, _plain_title, "<")).replace("<", "$<$")
    legend = legend.replace("* p", "$^{*}$ p") + " " + latex_escape(_conventions_note(table))
    lines = [
        "% generated by ambiscope; needs \\usepackage{booktabs}",
        "\\begin{table}[t]",
        "\\centering",
        "\\small",
        f"\\caption{{{latex_escape(caption or DEFAULT_CAPTION)} {legend}}}",
        f"\\label{{{latex_escape(label)}}}",
        f"\\begin{{tabular}}{{{spec}}}",
        "\\toprule",
        " & ".join(h if "$" in h else latex_escape(h) for h in header) + " \\\\",
        "\\midrule",
    ]
    previous: tuple[str, str] | None = None
    for i, row in enumerate(table.rows):
        block = (row["dataset"], str(row["group"]))
        if previous is not None and block != previous:
            lines.append("\\midrule")
        previous = block
        cells = [
            latex_escape(row["dataset"]),
            latex_escape(row["run_label"]),
            latex_escape(row["strategy"]),
        ]
        if table.options.by != "none":
            cells.append(latex_escape(row["group"]))
        cells.append(str(row["n"]))
        for m in metrics:
            value = _fmt(row[m])
            value = f"\\textbf{{{value}}}" if (i, m) in best else value
            if _significant(row, m):
                value += "$^{*}$"
            lo, hi = row[f"{m}_lo"], row[f"{m}_hi"]
            if math.isfinite(lo) and math.isfinite(hi):
                value += f"\\,{{\\scriptsize[{lo:.3f}, {hi:.3f}]}}"
            cells.append(value)
        lines.append(" & ".join(cells) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}", "\\end{table}"]
    return "\n".join(lines) + "\n"


def render(table: BenchmarkTable, fmt: str, provenance: dict[str, Any] | None = None) -> str:
    """The table in one of TABLE_FORMATS."""
    if fmt not in TABLE_FORMATS:
        raise ExportError(
            f"--format must be one of {', '.join(TABLE_FORMATS.names())}, got {fmt!r}"
        )
    return TABLE_FORMATS[fmt](table, provenance)


def write_table(
    table: BenchmarkTable, fmt: str, path: str | Path, provenance: dict[str, Any]
) -> Path:
    """Write the rendered table to `path` and `PATH.provenance.json` beside it, each
    atomically (a reader never sees half a file); returns the provenance file's path."""
    out = Path(path)
    atomic_write_text(out, render(table, fmt, provenance))
    beside = out.with_name(out.name + ".provenance.json")
    atomic_write_text(beside, dumps(provenance) + "\n")
    return beside
