"""`metrics --calibrate-on SPLIT` (table path and command line): fitted on SPLIT, reported
elsewhere only. One module, so the demo workspace fixture is built once for both."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ambiscope.core.conventions import Conventions
from ambiscope.core.export._common import ExportError
from ambiscope.core.export.calibration import raw_name
from ambiscope.core.export.data import load_dataset, load_members
from ambiscope.core.export.tables import (
    TableOptions,
    compute_benchmark,
    plan_metrics,
    read_metrics,
    render,
)
from ambiscope.core.metrics.calibration import fit_temperature
from ambiscope.db import Workspace
from tests.core.test_export_data import demo_db, demo_template  # noqa: F401
from tests.tui.cli.test_export import invoke


def _options(**kw: object) -> TableOptions:
    return TableOptions(bootstrap=50, calibrate_on="train", **kw)  # type: ignore[arg-type]


def test_fit_on_train_only_and_every_row_on_the_other_clips(demo_db: Path) -> None:  # noqa: F811
    with Workspace.open(demo_db) as ws:
        ds = ws.get_dataset("demo")
        plan = plan_metrics(ws, strategies=["vote"], options=_options())
        with ws.snapshot():
            members, prov = read_metrics(ws, plan)
            data = load_dataset(ws, ds)
            raw = {(m.run.id, m.strategy): m for m in load_members(ws, data, ws.runs(ds.id))}
        table, _ = compute_benchmark(ws, strategies=["vote"], options=_options())
    assert {"js", "bc", "ece"} <= set(plan.options.metrics)  # always there when calibrating
    for m in members:  # nothing reported comes from the fitting split
        assert "train" not in set(m.data.columns["split"][m.rows])
    held_out = {int(c) for m in members for c in m.clip_ids}
    assert prov["counts"] == {"predictions": 4, "clips": {"demo": len(held_out)}}  # raw ones
    record = prov["calibration"]
    assert (record["method"], record["split"], record["eps"]) == ("temperature", "train", 1e-6)
    assert {(f["run"], f["strategy"]) for f in record["fits"]} == {
        (run, s) for run in (1, 2) for s in ("single", "vote")
    }
    for fit in record["fits"]:  # the very fit a call on the member's train clips gives
        m = raw[(fit["run"], fit["strategy"])]
        train = m.data.columns["split"][m.rows] == "train"
        assert fit["n_fit"] == train.sum() and fit["n_reported"] == (~train).sum()
        expected = fit_temperature(m.P[train], m.Q[train]).params["temperature"]
        assert fit["temperature"] == pytest.approx(expected, rel=1e-12)
    rows = {(r["run"], r["strategy"], r["group"]): r for r in table.rows}
    assert {s for _, s, _ in rows} == {"single", "single+cal", "vote", "vote+cal"}
    for (run, strategy, group), row in rows.items():
        base = raw_name(strategy)
        if base is None:
            continue
        before = rows[(run, base, group)]
        assert row["baseline"] == base and row["n"] == before["n"]
        assert row["accuracy"] == before["accuracy"]  # a temperature keeps the argmax
        assert np.isfinite(row["js_p"])  # tested against the raw strategy
    order = [r["strategy"] for r in table.rows if r["run"] == 1 and r["group"] == "all"]
    assert order == ["single", "single+cal", "vote", "vote+cal"]


def test_formats_say_where_it_was_fitted_and_vector_records_its_parameters(
    demo_db: Path,  # noqa: F811
) -> None:
    with Workspace.open(demo_db) as ws:
        table, prov = compute_benchmark(
            ws, runs=[1], strategies=["vote"], options=_options(calibration="vector")
        )
    for fmt in ("table", "md", "latex"):
        text = render(table, fmt, prov).replace("\\_", "_")
        assert "+cal rows: vector scaling fitted per run x strategy on split 'train'" in text
        assert "clips outside 'train' only" in text
    fit = json.loads(render(table, "json", prov))["provenance"]["calibration"]["fits"][0]
    assert len(fit["scale"]) == len(fit["bias"]) == 6 and fit["l2"] > 0
    assert abs(sum(fit["bias"])) < 1e-6  # the L2 penalty fixes the free constant


@pytest.mark.parametrize(
    ("split", "where", "message"),
    [
        ("dev", None, "dataset 'demo' has no clips in split 'dev' (splits present: test, train, "),
        ("train", "split:test", "no compared clips in split 'train' (splits of the compared"),
        ("train", "split:train", "every compared clip is in split 'train', nothing left to "),
    ],
)
def test_unusable_splits_are_one_line_errors(
    demo_db: Path,  # noqa: F811
    split: str,
    where: str | None,
    message: str,
) -> None:
    with Workspace.open(demo_db) as ws, pytest.raises(ExportError) as info:
        compute_benchmark(ws, where=where, options=TableOptions(bootstrap=0, calibrate_on=split))
    assert message in str(info.value) and "\n" not in str(info.value)


def test_an_unknown_method_is_refused_before_any_work() -> None:
    with pytest.raises(ExportError, match="--calibration must be one of temperature, vector"):
        TableOptions(calibrate_on="train", calibration="platt")


def test_report_section_lists_the_fits_and_draws_before_and_after(
    demo_db: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    pytest.importorskip("matplotlib", reason="matplotlib is the optional `report` extra")
    from ambiscope.core.export.report import _Figures, calibration_section

    with Workspace.open(demo_db) as ws:
        plan = plan_metrics(ws, runs=[1], strategies=["vote"], options=_options(baseline=None))
        with ws.snapshot():
            members, prov = read_metrics(ws, plan)
    figs = _Figures(tmp_path)
    head, fits, image = calibration_section(figs, members, prov["calibration"], Conventions())
    assert head == "## Calibration\n" and "split `train`" in fits
    assert "| demo | 1 | vote | 30 | T = " in fits
    assert image == "![calibration](figures/calibration-demo-run1.png)\n"
    assert figs.written == ["figures/calibration-demo-run1.png"]
    assert (tmp_path / "figures" / "calibration-demo-run1.png").stat().st_size > 0


# ------------------------------------------------------------------ command line
SELECTION = ("--run", "1", "--strategy", "vote", "--bootstrap", "0")


def test_metrics_calibrated_table_and_provenance(demo_db: Path, tmp_path: Path) -> None:  # noqa: F811
    result = invoke(demo_db, "metrics", *SELECTION, "--calibrate-on", "train")
    assert result.exit_code == 0, result.output
    strategies = {line.split()[2] for line in result.output.splitlines() if line.startswith("demo")}
    assert strategies == {"single", "single+cal", "vote", "vote+cal"}
    assert "ECE ↓" in result.output  # added: calibration is about it
    assert "every row reports the clips outside 'train' only" in result.output
    out = tmp_path / "t.json"
    args = ("--calibrate-on", "validation", "--calibration", "vector", "--format", "json")
    result = invoke(demo_db, "metrics", *SELECTION, *args, "-o", str(out))
    assert result.exit_code == 0, result.output
    prov = json.loads(out.with_name("t.json.provenance.json").read_text())
    assert prov["options"]["calibrate_on"] == "validation"
    assert prov["calibration"]["method"] == "vector"
    assert {f["strategy"] for f in prov["calibration"]["fits"]} == {"single", "vote"}


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (
            ("--calibrate-on", "dev"),
            1,
            "Error: --calibrate-on dev: dataset 'demo' has no clips in split 'dev' "
            "(splits present: test, train, validation)",
        ),
        (("--calibration", "vector"), 2, "Error: --calibration needs --calibrate-on SPLIT"),
        (("--calibrate-on", "train", "--calibration", "platt"), 2, "'temperature', 'vector'"),
    ],
)
def test_bad_calibration_options_fail_in_one_line(
    demo_db: Path,  # noqa: F811
    args: tuple[str, ...],
    code: int,
    message: str,
) -> None:
    result = invoke(demo_db, "metrics", *SELECTION, *args)
    assert result.exit_code == code
    assert message in result.output.strip().splitlines()[-1]
