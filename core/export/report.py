"""`ambiscope report OUT_DIR`: a self-contained Markdown report with PNG figures.

Contents: the benchmark table (by ambiguity level, CIs, paired tests vs the baseline);
JS and BC by ambiguity level per strategy (grouped bars); model vs human entropy
(scatter); reliability diagrams with ECE; confusion matrices of argmax labels;
invalid-output rates; N-scaling curves (re-aggregating stored candidates). Next to
`report.md` and `figures/` it writes `metrics.csv`, `metrics.json` and `provenance.json`.

With `--calibrate-on SPLIT` every number describes the clips outside SPLIT; the table has
the `+cal` rows, a Calibration section lists the fitted parameters and draws reliability
diagrams before and after calibration, and the other figures show the raw strategies.

matplotlib is an optional extra (`pip install 'ambiscope[report]'`); it is imported only
here, with the non-interactive Agg backend, so the report works over SSH without a display.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ambiscope.core.conventions import Conventions
from ambiscope.core.export._common import (
    ExportError,
    Protected,
    atomic_dir,
    check_target_dir,
    dumps,
    safe_stem,
)
from ambiscope.core.export.calibration import raw_name
from ambiscope.core.export.data import MemberData
from ambiscope.core.export.provenance import PROVENANCE_FILE
from ambiscope.core.export.scaling import (
    DEFAULT_MAX_CLIPS,
    ScalingCurve,
    ScalingInput,
    read_scaling_input,
    scaling_curves,
)
from ambiscope.core.export.tables import (
    LEVEL_ORDER,
    BenchmarkTable,
    TableOptions,
    build_table,
    format_csv,
    format_json,
    format_markdown,
    plan_metrics,
    read_metrics,
)
from ambiscope.core.metrics.functions import ece, ece_bin_index, entropy_bits
from ambiscope.core.scaling.strategies import default_curves, strategy_rank
from ambiscope.core.versions import ambiscope_version
from ambiscope.db import Workspace

INSTALL_HINT = "the report needs matplotlib: pip install 'ambiscope[report]'"
FIG_DIR = "figures"
DPI = 110


def require_matplotlib() -> None:
    """Fail with the install hint when the optional extra is missing."""
    if importlib.util.find_spec("matplotlib") is None:
        raise ExportError(INSTALL_HINT)


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # no display over SSH; must precede pyplot
    import matplotlib.pyplot as plt

    return plt


@dataclass
class ReportOptions:
    datasets: tuple[str, ...] = ()
    runs: tuple[int, ...] = ()
    strategies: tuple[str, ...] = ()
    where: str | None = None
    table: TableOptions = field(default_factory=TableOptions)
    scaling_clips: int = DEFAULT_MAX_CLIPS
    scaling_strategies: tuple[str, ...] = field(default_factory=default_curves)
    force: bool = False


@dataclass
class ReportResult:
    out: Path
    figures: list[str]
    rows: int
    provenance: dict[str, Any]


# ------------------------------------------------------------------------- figures
class _Figures:
    """Writes figures into OUT/figures and remembers their Markdown references."""

    def __init__(self, out: Path) -> None:
        self.plt = _pyplot()
        self.dir = out / FIG_DIR
        self.dir.mkdir()
        self.written: list[str] = []

    def save(self, fig: Any, name: str) -> str:
        fig.tight_layout()
        fig.savefig(self.dir / name, dpi=DPI)
        self.plt.close(fig)
        self.written.append(f"{FIG_DIR}/{name}")
        return f"{FIG_DIR}/{name}"


def _by_run(members: Sequence[MemberData]) -> dict[int, list[MemberData]]:
    out: dict[int, list[MemberData]] = {}
    for m in sorted(members, key=lambda m: (m.run.id, strategy_rank(m.strategy))):
        out.setdefault(m.run.id, []).append(m)
    return out


def _grid(n: int) -> tuple[int, int]:
    cols = min(n, 3)
    return math.ceil(n / cols), cols


def _stem(m: MemberData) -> str:
    return f"{safe_stem(m.data.dataset.name)}-run{m.run.id}"


def bars_figure(figs: _Figures, table: BenchmarkTable, run_members: list[MemberData]) -> str:
    """JS and BC by ambiguity level, one bar per strategy, 95% CI whiskers."""
    plt = figs.plt
    first = run_members[0]
    rows = [r for r in table.rows if r["run"] == first.run.id]
    groups = [g for g in (*LEVEL_ORDER, "all") if any(r["group"] == g for r in rows)]
    strategies = [m.strategy for m in run_members]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    width = 0.8 / max(len(strategies), 1)
    for ax, metric, title in zip(axes, ("js", "bc"), ("JS divergence ↓", "BC ↑"), strict=True):
        if metric not in table.options.metrics:
            ax.set_visible(False)
            continue
        for j, strategy in enumerate(strategies):
            vals, errs = [], [[], []]
            for g in groups:
                row = next((r for r in rows if r["group"] == g and r["strategy"] == strategy), None)
                v = row[metric] if row else math.nan
                lo = row.get(f"{metric}_lo", math.nan) if row else math.nan
                hi = row.get(f"{metric}_hi", math.nan) if row else math.nan
                vals.append(v)
                errs[0].append(v - lo if math.isfinite(lo) else 0.0)
                errs[1].append(hi - v if math.isfinite(hi) else 0.0)
            x = np.arange(len(groups)) + (j - (len(strategies) - 1) / 2) * width
            ax.bar(x, vals, width, yerr=errs, capsize=2, label=strategy)
        ax.set_xticks(np.arange(len(groups)), groups)
        ax.set_xlabel("human ambiguity level")
        ax.set_title(title)
    axes[1].legend(fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.suptitle(f"{first.data.dataset.name}: {first.run.label}")
    return figs.save(fig, f"bars-{_stem(first)}.png")


def entropy_figure(figs: _Figures, run_members: list[MemberData], seed: int) -> str:
    """Normalised model entropy against normalised human entropy, one panel per strategy."""
    plt = figs.plt
    rows, cols = _grid(len(run_members))
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 3.2 * rows), squeeze=False)
    for ax in axes.flat[len(run_members) :]:
        ax.set_visible(False)
    rng = np.random.default_rng(seed)
    for ax, m in zip(axes.flat, run_members, strict=False):
        scale = math.log2(m.data.dataset.k) if m.data.dataset.k > 1 else 1.0
        hp, hq = entropy_bits(m.P) / scale, entropy_bits(m.Q) / scale
        r = np.corrcoef(hp, hq)[0, 1] if hp.std() > 0 and hq.std() > 0 else math.nan
        show = rng.choice(len(hp), size=min(len(hp), 3000), replace=False)
        ax.scatter(hp[show], hq[show], s=6, alpha=0.4)
        ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
        ax.set(xlim=(-0.02, 1.02), ylim=(-0.02, 1.02), xlabel="human H / log2 K")
        ax.set_ylabel("model H / log2 K")
        shown = f"{r:.2f}" if math.isfinite(r) else "n/a"
        ax.set_title(f"{m.strategy} (r = {shown})", fontsize=9)
    fig.suptitle(f"Entropy: {run_members[0].data.dataset.name}, {run_members[0].run.label}")
    return figs.save(fig, f"entropy-{_stem(run_members[0])}.png")


def reliability_bins(
    P: np.ndarray, Q: np.ndarray, conventions: Conventions | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean confidence, accuracy, count) per equal-width confidence bin, binned as the
    ECE in the table is (`ece_bins`, `ece_n_bins` of the conventions; default ambiscope's)."""
    conv = conventions or Conventions()
    n_bins = conv.ece_n_bins
    conf = Q.max(axis=1)
    correct = (P.argmax(axis=1) == Q.argmax(axis=1)).astype(float)
    idx = ece_bin_index(conf, n_bins, conv.ece_bins)
    count = np.bincount(idx, minlength=n_bins).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(idx, weights=conf, minlength=n_bins) / count
        accuracy = np.bincount(idx, weights=correct, minlength=n_bins) / count
    return mean_conf, accuracy, count


def reliability_figure(
    figs: _Figures, run_members: list[MemberData], conventions: Conventions
) -> str:
    """Accuracy of the model's top label against its confidence, per strategy, with ECE."""
    plt = figs.plt
    fig, ax = plt.subplots(figsize=(5, 4.5))
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--", label="perfect calibration")
    for m in run_members:
        conf, acc, count = reliability_bins(m.P, m.Q, conventions)
        ok = count > 0
        value = ece(m.P, m.Q, conventions.ece_n_bins, conventions.ece_bins)
        label = f"{m.strategy} (ECE {value:.3f})"
        ax.plot(conf[ok], acc[ok], marker="o", ms=3, label=label)
    ax.set(xlim=(0, 1.02), ylim=(0, 1.02), xlabel="confidence (max model probability)")
    ax.set_ylabel("accuracy vs human majority")
    ax.legend(fontsize=7)
    ax.set_title(f"Reliability: {run_members[0].data.dataset.name}, {run_members[0].run.label}")
    return figs.save(fig, f"reliability-{_stem(run_members[0])}.png")


def calibration_figure(
    figs: _Figures, pairs: list[tuple[MemberData, MemberData]], conventions: Conventions
) -> str:
    """Reliability before and after calibration, one panel per strategy of one run."""
    plt = figs.plt
    rows, cols = _grid(len(pairs))
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.4 * rows), squeeze=False)
    for ax in axes.flat[len(pairs) :]:
        ax.set_visible(False)
    for ax, (raw, cal) in zip(axes.flat, pairs, strict=False):
        ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
        for m, name in ((raw, "raw"), (cal, "calibrated")):
            conf, acc, count = reliability_bins(m.P, m.Q, conventions)
            ok = count > 0
            value = ece(m.P, m.Q, conventions.ece_n_bins, conventions.ece_bins)
            ax.plot(conf[ok], acc[ok], marker="o", ms=3, label=f"{name} (ECE {value:.3f})")
        ax.set(xlim=(0, 1.02), ylim=(0, 1.02), xlabel="confidence")
        ax.set_ylabel("accuracy vs human majority")
        ax.set_title(raw.strategy, fontsize=9)
        ax.legend(fontsize=7)
    first = pairs[0][0]
    fig.suptitle(f"Calibration: {first.data.dataset.name}, {first.run.label} (held-out clips)")
    return figs.save(fig, f"calibration-{_stem(first)}.png")


def calibration_pairs(
    members: Sequence[MemberData],
) -> dict[int, list[tuple[MemberData, MemberData]]]:
    """Per run, (raw, calibrated) members of each calibrated strategy, in strategy order."""
    by_key = {(m.run.id, m.strategy): m for m in members}
    out: dict[int, list[tuple[MemberData, MemberData]]] = {}
    for run_id, run_members in _by_run(members).items():
        for cal in run_members:
            raw = raw_name(cal.strategy)
            if raw is not None and (run_id, raw) in by_key:
                out.setdefault(run_id, []).append((by_key[(run_id, raw)], cal))
    return out


def confusion(P: np.ndarray, Q: np.ndarray) -> np.ndarray:
    """Row-normalised confusion matrix: human majority (rows) x model argmax (columns)."""
    k = P.shape[1]
    cm = np.bincount(P.argmax(axis=1) * k + Q.argmax(axis=1), minlength=k * k).reshape(k, k)
    totals = cm.sum(axis=1, keepdims=True)
    return np.divide(cm, totals, out=np.zeros((k, k)), where=totals > 0)


def confusion_figure(figs: _Figures, run_members: list[MemberData]) -> str:
    plt = figs.plt
    labels = run_members[0].data.dataset.label_set
    rows, cols = _grid(len(run_members))
    size = 1.2 + 0.45 * len(labels)
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols, size * rows), squeeze=False)
    for ax in axes.flat[len(run_members) :]:
        ax.set_visible(False)
    for ax, m in zip(axes.flat, run_members, strict=False):
        cm = confusion(m.P, m.Q)
        ax.imshow(cm, vmin=0, vmax=1, cmap="Blues")
        ticks = np.arange(len(labels))
        ax.set_xticks(ticks, [label[:4] for label in labels], fontsize=7, rotation=45)
        ax.set_yticks(ticks, [label[:4] for label in labels], fontsize=7)
        for (i, j), v in np.ndenumerate(cm):
            if v >= 0.005:
                colour = "white" if v > 0.6 else "black"
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=6, color=colour)
        ax.set_title(m.strategy, fontsize=9)
        ax.set_xlabel("model", fontsize=8)
        ax.set_ylabel("human majority", fontsize=8)
    fig.suptitle(f"Confusion: {run_members[0].data.dataset.name}, {run_members[0].run.label}")
    return figs.save(fig, f"confusion-{_stem(run_members[0])}.png")


def invalid_rates(members: Sequence[MemberData]) -> list[dict[str, Any]]:
    """Share of unreadable candidates per run and ambiguity level (strategy-independent)."""
    out = []
    for run_members in _by_run(members).values():
        m = max(run_members, key=lambda x: len(x.rows))
        levels = m.data.human.ambiguity[m.rows]
        row: dict[str, Any] = {"dataset": m.data.dataset.name, "run": m.run.id}
        row["run_label"] = m.run.label
        for level in (*LEVEL_ORDER, "all"):
            mask = np.ones(len(levels), bool) if level == "all" else levels == level
            total = m.n_candidates[mask].sum()
            row[level] = float(m.n_invalid[mask].sum() / total) if total > 0 else math.nan
        out.append(row)
    return out


def invalid_figure(figs: _Figures, rates: list[dict[str, Any]]) -> str:
    plt = figs.plt
    fig, ax = plt.subplots(figsize=(max(5, 1.4 * len(rates) + 2), 3.6))
    levels = (*LEVEL_ORDER, "all")
    width = 0.8 / len(levels)
    x = np.arange(len(rates))
    for j, level in enumerate(levels):
        ax.bar(x + (j - 1.5) * width, [r[level] for r in rates], width, label=level)
    ax.set_xticks(x, [f"{r['dataset']}\n{r['run_label']}"[:40] for r in rates], fontsize=8)
    ax.set_ylabel("invalid candidates (share)")
    ax.set_title("Unreadable model outputs by ambiguity level")
    ax.legend(fontsize=8)
    return figs.save(fig, "invalid-rates.png")


def scaling_figure(figs: _Figures, curves: list[ScalingCurve], data: ScalingInput) -> str:
    plt = figs.plt
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, metric, title in zip(axes, ("js", "bc"), ("JS divergence ↓", "BC ↑"), strict=True):
        for curve in curves:
            ax.plot(curve.sizes, getattr(curve, metric), marker="o", ms=3, label=curve.strategy)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("candidates used (N)")
        ax.set_title(title)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"N-scaling: {data.dataset}, {data.run.label} ({len(data.sets)} clips)")
    return figs.save(fig, f"scaling-{safe_stem(data.dataset)}-run{data.run.id}.png")


# ------------------------------------------------------------------------- markdown
def _md_rates(rates: list[dict[str, Any]]) -> str:
    levels = (*LEVEL_ORDER, "all")
    lines = [
        "| Dataset | Run | " + " | ".join(levels) + " |",
        "| :-- | :-- | " + " | ".join("--:" for _ in levels) + " |",
    ]
    for r in rates:
        cells = [f"{r[level]:.3f}" if math.isfinite(r[level]) else "n/a" for level in levels]
        lines.append(f"| {r['dataset']} | {r['run_label']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _md_scaling(curves: list[ScalingCurve]) -> str:
    sizes = sorted({n for c in curves for n in c.sizes})
    head = "| Strategy | metric | " + " | ".join(f"N={n}" for n in sizes) + " |"
    lines = [head, "| :-- | :-- | " + " | ".join("--:" for _ in sizes) + " |"]
    for c in curves:
        for metric in ("js", "bc", "accuracy"):
            values = dict(zip(c.sizes, getattr(c, metric), strict=True))
            cells = [f"{values[n]:.3f}" if n in values else "" for n in sizes]
            lines.append(f"| {c.strategy} | {metric} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _image(path: str, alt: str) -> str:
    return f"![{alt}]({path})\n"


def calibration_section(
    figs: _Figures,
    members: Sequence[MemberData],
    record: dict[str, Any],
    conventions: Conventions,
) -> list[str]:
    """The report's Calibration section: what was fitted, then before/after diagrams."""
    pairs = calibration_pairs(members).values()
    images = [_image(calibration_figure(figs, p, conventions), "calibration") for p in pairs]
    return ["## Calibration\n", _md_calibration(record), *images]


def _md_calibration(record: dict[str, Any]) -> str:
    """What was fitted where: one line per run x strategy with its parameters."""
    lines = [
        f"{record['method'].capitalize()} scaling fitted per run x strategy on split "
        f"`{record['split']}` (minimising the {record['objective']}; floor eps = "
        f"{record['eps']:g} on Q before the logarithm). Every number in this report is on "
        "the other clips. Loss: mean cross-entropy on the fitting clips, bits.\n",
        "| Dataset | Run | Strategy | fit clips | parameters | loss before | loss after |",
        "| :-- | --: | :-- | --: | :-- | --: | --: |",
    ]
    for fit in record["fits"]:
        if "temperature" in fit:
            params = f"T = {fit['temperature']:.3f}"
        else:
            scale = ", ".join(f"{v:.2f}" for v in fit["scale"])
            bias = ", ".join(f"{v:+.2f}" for v in fit["bias"])
            params = f"scale [{scale}]; bias [{bias}]"
        lines.append(
            f"| {fit['dataset']} | {fit['run']} | {fit['strategy']} | {fit['n_fit']} | "
            f"{params} | {fit['loss_before_bits']:.3f} | {fit['loss_after_bits']:.3f} |"
        )
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------- building
def build_report(ws: Workspace, out: str | Path, options: ReportOptions) -> ReportResult:
    """Write the report directory atomically (see the module docstring)."""
    require_matplotlib()
    out = Path(out)
    protect = Protected.of(ws)
    check_target_dir(out, force=options.force, protect=protect)
    plan = plan_metrics(
        ws,
        datasets=options.datasets,
        runs=options.runs,
        strategies=options.strategies,
        where=options.where,
        options=options.table,
    )
    with ws.snapshot():
        members, prov = read_metrics(ws, plan, export="report")
        scaling = _read_scaling(ws, members, options)
    table = build_table(members, plan.options)
    prov["options"]["scaling"] = {
        "max_clips": options.scaling_clips,
        "strategies": list(options.scaling_strategies),
    }
    with atomic_dir(out, force=options.force, protect=protect) as tmp:
        figs = _Figures(tmp)
        text = _write_sections(figs, table, members, scaling, options, prov)
        (tmp / "report.md").write_text(text, encoding="utf-8")
        (tmp / "metrics.csv").write_text(format_csv(table), encoding="utf-8")
        (tmp / "metrics.json").write_text(format_json(table, prov), encoding="utf-8")
        prov["files"] = ["report.md", "metrics.csv", "metrics.json", *figs.written]
        (tmp / PROVENANCE_FILE).write_text(dumps(prov) + "\n", encoding="utf-8")
    return ReportResult(out, figs.written, len(table.rows), prov)


def _read_scaling(
    ws: Workspace, members: list[MemberData], options: ReportOptions
) -> list[ScalingInput]:
    if not options.scaling_strategies or options.scaling_clips < 1:
        return []
    inputs = []
    raw = [m for m in members if raw_name(m.strategy) is None]
    for run_members in _by_run(raw).values():
        widest = max(run_members, key=lambda m: len(m.rows))
        data = read_scaling_input(
            ws, widest, max_clips=options.scaling_clips, seed=options.table.seed
        )
        if data is not None:
            inputs.append(data)
    return inputs


def _write_sections(
    figs: _Figures,
    table: BenchmarkTable,
    members: list[MemberData],
    scaling: list[ScalingInput],
    options: ReportOptions,
    prov: dict[str, Any],
) -> str:
    all_members = members
    members = [m for m in members if raw_name(m.strategy) is None]  # figures: raw strategies
    runs = _by_run(members)
    conventions = table.options.conventions or Conventions()
    parts = [
        "# ambiscope report\n",
        f"Generated {prov['created']} by ambiscope {ambiscope_version()} from "
        f"`{prov['workspace']['path']}` (schema {prov['workspace']['schema_version']}). "
        f"Filter: `{options.where or 'all clips'}`. Reference distribution: "
        f"{options.table.reference}. Conventions: {conventions.label()} (every field in "
        "`provenance.json`). Full provenance: `provenance.json`; numbers: "
        "`metrics.csv`, `metrics.json`.\n",
        "## Benchmark table\n",
        format_markdown(table),
        "## JS and BC by ambiguity level\n",
        *(_image(bars_figure(figs, table, rm), "JS and BC by ambiguity") for rm in runs.values()),
        "## Model entropy vs human entropy\n",
        "Points on the diagonal: the model is as uncertain as the annotators are divided.\n",
        *(_image(entropy_figure(figs, rm, options.table.seed), "entropy") for rm in runs.values()),
        "## Reliability (ECE)\n",
        *(_image(reliability_figure(figs, rm, conventions), "reliability") for rm in runs.values()),
    ]
    if "calibration" in prov:
        parts += calibration_section(figs, all_members, prov["calibration"], conventions)
    parts += [
        "## Confusion matrices (argmax labels, rows normalised)\n",
        *(_image(confusion_figure(figs, rm), "confusion") for rm in runs.values()),
        "## Invalid outputs\n",
    ]
    rates = invalid_rates(members)
    parts += [_md_rates(rates) + "\n", _image(invalid_figure(figs, rates), "invalid rates")]
    parts.append("## N-scaling\n")
    if not scaling:
        parts.append("No stored candidates to subsample (or scaling disabled).\n")
    for data in scaling:
        curves = scaling_curves(data, options.scaling_strategies)
        if not curves:
            continue
        parts.append(
            f"### {data.dataset}: {data.run.label}\n\nFirst n of the stored candidates "
            f"re-aggregated, {len(data.sets)} clips (seeded sample).\n"
        )
        figure = scaling_figure(figs, curves, data)
        parts += [_md_scaling(curves) + "\n", _image(figure, "N-scaling")]
    return "\n".join(parts)
