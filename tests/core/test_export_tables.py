"""The benchmark table: shared-resample bootstrap, paired tests, and every output format."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from ambiscope.core.export._common import ExportError
from ambiscope.core.export.tables import (
    TableOptions,
    baseline_for,
    build_table,
    compute_benchmark,
    format_latex,
    latex_escape,
    render,
)
from ambiscope.core.metrics.bootstrap import CohortMember, cohort_metrics, evaluate_cohort
from ambiscope.core.metrics.resampling import paired_bootstrap
from ambiscope.core.metrics.table import metric_table
from ambiscope.db import Workspace
from tests.core.test_export_data import demo_db, demo_template  # noqa: F401

LEVELS = ["low", "medium", "high"]


def _toy(n: int = 300, k: int = 5, seed: int = 0) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    P = rng.multinomial(6, rng.dirichlet(np.full(k, 0.6), size=n)) / 6.0
    Q1 = 0.6 * P + 0.4 * rng.dirichlet(np.ones(k), size=n)
    Q2 = 0.55 * P + 0.45 * rng.dirichlet(np.ones(k), size=n)
    groups = rng.choice(np.array(LEVELS), size=n)
    inv = rng.integers(0, 3, size=n).astype(float)
    return P, Q1, Q2, groups, inv, np.full(n, 8.0)


def _close(a: float, b: float, tol: float = 2e-7) -> bool:
    return (np.isnan(a) and np.isnan(b)) or abs(a - b) <= tol


# ------------------------------------------------------------------------ bootstrap engine
def test_shared_bootstrap_equals_metric_table_for_every_member() -> None:
    P, Q1, Q2, groups, inv, cand = _toy()
    members = [CohortMember(Q1, inv, cand), CohortMember(Q2, inv, cand)]
    result = evaluate_cohort(
        P, members, groups, metrics=cohort_metrics(), order=LEVELS, bootstrap=150, seed=4
    )
    for i, Q in enumerate((Q1, Q2)):
        reference = metric_table(
            P, Q, groups, bootstrap=150, seed=4, n_invalid=inv, n_candidates=cand, order=LEVELS
        )
        for row in reference:
            mine = result.rows[(i, row["group"])]
            assert mine["n"] == row["n"]
            for key, value in mine.items():
                assert _close(value, row[key]), (i, row["group"], key, value, row[key])


def test_labels_nobody_chose_and_metric_subsets_match_metric_table() -> None:
    P, Q1, _, groups, *_ = _toy(n=200, seed=5)
    P[:, 0] += P[:, 4]  # a label no human chose: an empty label block
    P[:, 4] = 0.0
    for metrics in (("macro_f1", "weighted_f1"), ("js", "accuracy"), ("r2_det", "ece")):
        result = evaluate_cohort(
            P, [CohortMember(Q1)], groups, metrics=metrics, order=LEVELS, bootstrap=80, seed=2
        )
        reference = metric_table(P, Q1, groups, bootstrap=80, seed=2, order=LEVELS)
        for row in reference:
            mine = result.rows[(0, row["group"])]
            for key in (f"{m}{suffix}" for m in metrics for suffix in ("", "_lo", "_hi")):
                assert _close(mine[key], row[key]), (key, row["group"])


def test_paired_comparison_equals_paired_bootstrap() -> None:
    P, Q1, Q2, groups, *_ = _toy(seed=1)
    members = [CohortMember(Q1), CohortMember(Q2)]
    result = evaluate_cohort(
        P,
        members,
        groups,
        metrics=cohort_metrics(),
        order=LEVELS,
        pairs=[(0, 1)],
        bootstrap=200,
        seed=9,
    )
    reference = paired_bootstrap(P, Q1, Q2, n_resamples=200, seed=9)
    for metric in cohort_metrics():
        if metric == "invalid_rate":
            continue
        for key in ("diff", "lo", "hi", "p"):
            mine, theirs = result.pairs[(0, "all")][metric][key], reference[metric][key]
            assert _close(mine, theirs, 1e-6), (metric, key, mine, theirs)


def test_identical_strategies_are_not_significant() -> None:
    P, Q1, *_ = _toy(seed=2)
    result = evaluate_cohort(
        P, [CohortMember(Q1), CohortMember(Q1.copy())], metrics=("js", "accuracy"), pairs=[(0, 1)]
    )
    for metric in ("js", "accuracy"):
        assert result.pairs[(0, "all")][metric]["diff"] == 0.0
        assert result.pairs[(0, "all")][metric]["p"] == 1.0


def test_without_bootstrap_points_only() -> None:
    P, Q1, *_ = _toy(n=50)
    result = evaluate_cohort(P, [CohortMember(Q1)], metrics=("js", "bc"), bootstrap=0)
    assert set(result.rows[(0, "all")]) == {"n", "js", "bc"}


def test_spearman_is_refused_with_a_reason() -> None:
    with pytest.raises(ValueError, match="compare"):
        TableOptions(metrics=("entropy_spearman",))


# ------------------------------------------------------------------------ workspace tables
@pytest.fixture
def table_and_provenance(demo_db: Path):  # noqa: F811
    with Workspace.open(demo_db) as ws:
        return compute_benchmark(ws, options=TableOptions(bootstrap=100))


def test_table_rows_cover_runs_strategies_and_levels(table_and_provenance) -> None:
    table, provenance = table_and_provenance
    keys = {(r["run_label"], r["strategy"], r["group"]) for r in table.rows}
    for run in ("good", "poor"):
        for strategy in ("single", "vote", "wbon", "bon", "verifier", "wverifier"):
            for group in (*LEVELS, "all"):
                assert (run, strategy, group) in keys
    groups = [r["group"] for r in table.rows]
    assert groups.index("low") < groups.index("medium") < groups.index("high")
    assert groups[-1] == "all"
    for row in table.rows:
        assert row["js_lo"] <= row["js"] <= row["js_hi"]
        if row["strategy"] == "single":
            assert np.isnan(row["js_p"])
        else:
            assert 0.0 <= row["js_p"] <= 1.0
    # a good model's weighted vote beats its single answer decisively
    best = next(
        r
        for r in table.rows
        if r["run_label"] == "good" and r["strategy"] == "wbon" and r["group"] == "all"
    )
    assert best["js_diff"] < 0 and best["js_p"] < 0.05
    assert {r["id"] for r in provenance["runs"]} == {1, 2}
    assert provenance["runs"][0]["config"]["quality"] == 0.8
    assert provenance["counts"]["clips"] == {"demo": 60}


def test_table_matches_metric_table_on_workspace_data(demo_db: Path) -> None:  # noqa: F811
    from ambiscope.core.evaluation import evaluate

    with Workspace.open(demo_db) as ws:
        table, _ = compute_benchmark(
            ws, runs=[1], strategies=["vote"], options=TableOptions(bootstrap=50, seed=3)
        )
        reference = evaluate(ws, "demo", runs=[1], strategies=["vote"], bootstrap=50, seed=3)
    mine = {r["group"]: r for r in table.rows if r["strategy"] == "vote"}
    for row in reference:
        for metric in ("js", "bc", "r2_pearson", "accuracy", "macro_f1"):
            assert _close(mine[row["group"]][metric], row[metric])  # float32 storage
            assert _close(mine[row["group"]][f"{metric}_lo"], row[f"{metric}_lo"])


def test_strategies_on_different_clips_are_compared_on_the_intersection(demo_db: Path) -> None:  # noqa: F811
    with Workspace.open(demo_db) as ws:
        ws.conn.execute(
            "DELETE FROM predictions WHERE run_id = 1 AND strategy = 'bon' AND clip_id <= 10"
        )
        table, _ = compute_benchmark(ws, runs=[1], options=TableOptions(bootstrap=50, by="none"))
    rows = {r["strategy"]: r for r in table.rows}
    assert rows["bon"]["n"] == 50 and rows["single"]["n"] == 60
    assert np.isfinite(rows["bon"]["js_p"])


def test_baseline_falls_back_between_single_and_cot() -> None:
    assert baseline_for({"cot", "vote"}, "single") == "cot"
    assert baseline_for({"single", "vote"}, "cot") == "single"
    assert baseline_for({"vote", "wbon"}, "bon") is None
    assert baseline_for({"vote"}, None) is None


def test_selected_strategies_bring_their_baseline(demo_db: Path) -> None:  # noqa: F811
    with Workspace.open(demo_db) as ws:
        table, _ = compute_benchmark(
            ws, strategies=["wbon"], options=TableOptions(bootstrap=30, by="none")
        )
    assert {r["strategy"] for r in table.rows} == {"single", "wbon"}
    assert all(np.isfinite(r["js_p"]) for r in table.rows if r["strategy"] == "wbon")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"runs": [99]}, "no run"),
        ({"strategies": ["nope"]}, "nope"),
        ({"datasets": ["missing"]}, "no dataset"),
        ({"where": "ambiguity:extreme"}, "ambiguity"),
        ({"where": "flag:never-set"}, "nothing to compare"),
    ],
)
def test_bad_selection_fails_with_one_line(demo_db: Path, kwargs, message) -> None:  # noqa: F811
    with Workspace.open(demo_db) as ws, pytest.raises(Exception, match=message) as info:
        compute_benchmark(ws, options=TableOptions(bootstrap=10), **kwargs)
    assert "\n" not in str(info.value)


def test_synthetic_and_combined_references_keep_human_ambiguity(demo_db: Path) -> None:  # noqa: F811
    from ambiscope.db import VoteIn

    with Workspace.open(demo_db) as ws:
        with pytest.raises(ExportError, match="nothing to compare"):  # no synthetic votes yet
            compute_benchmark(ws, options=TableOptions(bootstrap=0, reference="synthetic"))
        ds = ws.get_dataset("demo")
        alm = ws.ensure_annotators(ds.id, [("alm-1", "synthetic")])["alm-1"]
        ws.add_votes(ds.id, [VoteIn(c.id, alm, "sad") for c in ws.clips(ds.id)])
        tables = {
            ref: compute_benchmark(
                ws, runs=[1], strategies=["vote"], options=TableOptions(bootstrap=0, reference=ref)
            )
            for ref in ("human", "synthetic", "combined")
        }
    sizes = {
        ref: {r["group"]: r["n"] for r in table.rows if r["strategy"] == "vote"}
        for ref, (table, _) in tables.items()
    }
    assert sizes["human"] == sizes["synthetic"] == sizes["combined"]  # same clips per level
    js = {
        ref: next(r["js"] for r in t.rows if r["group"] == "all") for ref, (t, _) in tables.items()
    }
    assert len(set(js.values())) == 3
    assert tables["combined"][1]["options"]["reference"] == "combined"


def test_filter_restricts_the_compared_clips(demo_db: Path) -> None:  # noqa: F811
    with Workspace.open(demo_db) as ws:
        table, prov = compute_benchmark(
            ws, where="split:train", options=TableOptions(bootstrap=0, by="none")
        )
    assert {r["n"] for r in table.rows} == {30}
    assert prov["filter"] == "split:train"


# ------------------------------------------------------------------------ formats
def test_csv_and_json_formats(table_and_provenance) -> None:
    table, provenance = table_and_provenance
    rows = list(csv.DictReader(io.StringIO(render(table, "csv"))))
    assert len(rows) == len(table.rows)
    assert set(rows[0]) >= {"dataset", "run", "strategy", "group", "n", "js", "js_lo", "js_p"}
    assert rows[0]["js_p"] == ""  # the baseline has no p-value: empty cell, not "nan"
    data = json.loads(render(table, "json", provenance))  # strict JSON: NaN would fail
    assert data["rows"][0]["js_p"] is None
    assert data["provenance"]["export"] == "metrics"


def test_markdown_bolds_the_best_value_per_column(table_and_provenance) -> None:
    table, _ = table_and_provenance
    text = render(table, "md")
    lines = [line for line in text.splitlines() if line.startswith("| demo |")]
    assert len(lines) == len(table.rows)
    all_rows = [line for line in lines if "| all |" in line]
    js_cells = [line.split("|")[6].strip() for line in all_rows]
    best = min(float(re.match(r"\**([0-9.]+)", c).group(1)) for c in js_cells)
    assert any(c.startswith(f"**{best:.3f}**") for c in js_cells)
    assert "\\*" in text  # significance marks


def _balanced(text: str) -> bool:
    depth = 0
    for i, ch in enumerate(text):
        if ch in "{}" and i and text[i - 1] == "\\":
            continue
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if depth < 0:
            return False
    return depth == 0


def test_latex_is_a_booktabs_table_with_escaping(table_and_provenance) -> None:
    table, _ = table_and_provenance
    for row in table.rows:
        row["run_label"] = "my_run 100% & {co}"
    text = format_latex(table)
    for command in ("\\toprule", "\\midrule", "\\bottomrule", "\\begin{tabular}", "\\textbf{"):
        assert command in text
    assert "my\\_run 100\\% \\& \\{co\\}" in text
    assert _balanced(text)
    body = text.split("\\midrule", 1)[1]
    assert "my_run" not in body and " 100% " not in body
    n_cols = text.split("\\begin{tabular}{", 1)[1].split("}", 1)[0]
    for line in text.splitlines():
        if line.endswith("\\\\"):
            assert len(re.findall(r"(?<!\\)&", line)) + 1 == len(n_cols)


def test_latex_escape_covers_specials() -> None:
    assert latex_escape("a_b%c&d$e#f{g}h~i^j\\") == (
        "a\\_b\\%c\\&d\\$e\\#f\\{g\\}h\\textasciitilde{}i\\textasciicircum{}j\\textbackslash{}"
    )


def test_latex_compiles_with_pdflatex(table_and_provenance, tmp_path: Path) -> None:
    if shutil.which("pdflatex") is None:
        pytest.skip("pdflatex is not installed; the structure is checked by the test above")
    table, _ = table_and_provenance
    for row in table.rows:
        row["run_label"] = "run_#1 100% & {x} ~^\\ é"
    doc = (
        "\\documentclass{article}\\usepackage{booktabs}\\usepackage[margin=0.5cm,landscape]"
        "{geometry}\\begin{document}" + format_latex(table) + "\\end{document}"
    )
    (tmp_path / "t.tex").write_text(doc)
    done = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "t.tex"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-2000:]


def test_text_table_marks_best_and_significance(table_and_provenance) -> None:
    table, _ = table_and_provenance
    text = render(table, "table")
    assert "†" in text and "*" in text
    assert text.splitlines()[0].split()[:4] == ["dataset", "run", "strategy", "group"]


def test_build_table_without_baseline_has_no_p_values(demo_db: Path) -> None:  # noqa: F811
    with Workspace.open(demo_db) as ws:
        table, _ = compute_benchmark(ws, options=TableOptions(bootstrap=20, baseline=None))
    assert all(np.isnan(r["js_p"]) for r in table.rows)
    assert build_table([], TableOptions()).rows == []


def test_read_only_workspace_with_stale_votes_still_exports(demo_db: Path) -> None:  # noqa: F811
    from ambiscope.db import VoteIn

    with Workspace.open(demo_db) as ws:
        ds = ws.get_dataset("demo")
        rater = ws.ensure_annotators(ds.id, [("late", "human")])["late"]
        ws.add_votes(ds.id, [VoteIn(c.id, rater, "angry") for c in ws.clips(ds.id)])
    with Workspace.open(demo_db, readonly=True) as ws:
        table, prov = compute_benchmark(ws, runs=[1], options=TableOptions(bootstrap=0))
        assert table.rows and prov["counts"]["clips"] == {"demo": 60}


def test_an_approximate_strategy_is_never_the_best_in_exported_tables() -> None:
    from ambiscope.core.export.tables import _best

    rows = [
        {"dataset": "d", "group": "all", "strategy": "vote", "js": 0.40},
        {"dataset": "d", "group": "all", "strategy": "likelihood", "js": 0.30},
        {"dataset": "d", "group": "all", "strategy": "likelihood~", "js": 0.10},
    ]
    assert _best(rows, ["js"]) == {(1, "js")}
