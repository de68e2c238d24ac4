"""Saturation conventions (issue 15): nested orderings + ceil(1 + ln10 / c) (ambiscope) vs
independent k-rater samples + the first point of a 100-point grid (the official code)."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from scipy.spatial.distance import jensenshannon

from ambiscope.core.conventions import preset
from ambiscope.core.demo import DemoSpec, build_demo
from ambiscope.core.synthetic.alignment import (
    ALL,
    Curve,
    align_run,
    fit_curves,
    fit_saturation,
    format_report,
    grid_saturation,
    sampled_curves,
)
from ambiscope.core.synthetic.raters import execute_synthetic
from ambiscope.core.synthetic.spec import SyntheticSpec
from ambiscope.db import Workspace
from ambiscope.tui.cli.main import main as cli
from tests.core.synthetic.test_raters import FakeBackend

K = np.arange(1, 11, dtype=float)
C_JS = math.log(10) / 4.3  # 1 + ln10 / c = 5.3
JS_CURVE = 0.2 + 0.3 * np.exp(-C_JS * K)  # falling, limit 0.2
BC_CURVE = 0.9 - 0.5 * np.exp(-0.5 * K)  # rising, limit 0.9


def _curve(js: np.ndarray, bc: np.ndarray) -> Curve:
    zeros = np.zeros_like(js)
    mean = {"js": js, "bc": bc, "combined_js": js, "combined_bc": bc}
    return Curve(ALL, 1, K.astype(int), mean, dict.fromkeys(mean, zeros), zeros)


# ------------------------------------------------------------------------ the two rules


def test_the_two_rules_on_curves_with_known_answers() -> None:
    curves = {ALL: _curve(JS_CURVE, BC_CURVE)}
    nested = fit_curves(curves, saturation="nested-fit")[ALL]
    grid = fit_curves(curves, saturation="sampled-grid")[ALL]
    assert nested["js"].c == pytest.approx(C_JS, rel=1e-5)
    # nested: ceil(1 + ln10 / c) = ceil(5.3) = 6 for JS, ceil(1 + ln10 / 0.5) = 6 for BC
    assert (nested["js"].k_sat, nested["bc"].k_sat) == (6, 6)
    # grid over [1, 10] (x_i = 1 + i / 11). JS: first f(x) <= a + 0.1 (f(1) - a), i.e.
    # x >= 5.3 -> x_48 = 5.364 -> 5. BC: first f(x) >= 0.95 a = 0.855, i.e.
    # 0.5 exp(-0.5 x) <= 0.045, x >= 4.8159 -> x_42 = 4.818 -> 5.
    assert (grid["js"].k_sat, grid["bc"].k_sat) == (5, 5)
    assert not grid["js"].extrapolated and grid["js"].message == ""


def test_grid_rule_uses_the_maximum_observed_not_the_first_point() -> None:
    # a noisy first point below the second: max observed is y[1], threshold rises with it
    y = JS_CURVE.copy()
    fit = fit_saturation(K, y)
    raised = y.copy()
    raised[1] = 0.6  # max observed 0.6 instead of f(1) = 0.375
    assert grid_saturation(fit, K, y, lower_is_better=True).k_sat == 5
    # threshold = 0.2 + 0.1 * 0.4 = 0.24: 0.3 exp(-c x) <= 0.04 -> x >= 3.763 -> x_31 = 3.818
    assert grid_saturation(fit, K, raised, lower_is_better=True).k_sat == 4


def test_grid_rule_without_a_qualifying_point_reports_no_saturation() -> None:
    line = 0.5 - 0.01 * K
    fit = fit_saturation(K, line)
    out = grid_saturation(fit, K, line, lower_is_better=True)
    assert out.ok and out.k_sat is None and "grid" in out.message
    failed = fit_saturation(K[:2], line[:2])
    assert grid_saturation(failed, K[:2], line[:2], lower_is_better=True) is failed


# ------------------------------------------------------------------------ sampled curves


def test_sampled_curves_on_a_hand_worked_case() -> None:
    # clip 0: raters say 0 and 1, human 50/50. clip 1: one valid rater (0), human all 0.
    # clip 2: no valid rater (left out of the synthetic curves), human all 1.
    labels = np.array([[0, 1], [0, -1], [-1, -1]])
    P = np.array([[0.5, 0.5], [1.0, 0.0], [0.0, 1.0]])
    counts = np.array([[1.0, 1.0], [2.0, 0.0], [0.0, 3.0]])
    curve = sampled_curves(labels, P, counts, repeats=3, seed=0)[ALL]
    # k=1: clip 0 one-hot vs 50/50 -> JS = 0.5 (KL(P|M) + KL(Q|M)), M = (.75, .25):
    # 0.5 (0.207519 + 0.415037) = 0.311278 bits, BC = sqrt(0.5); clip 1: JS 0, BC 1
    np.testing.assert_allclose(curve.mean["js"], [0.311278 / 2, 0.0], atol=1e-6)
    np.testing.assert_allclose(curve.mean["bc"], [(math.sqrt(0.5) + 1) / 2, 1.0], atol=1e-6)
    np.testing.assert_allclose(curve.sd["js"], [0.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(curve.n_used, [2, 2])
    # combined, k=1: clip 0 (2, 1)/3 vs 50/50: JS 0.020721; clips 1, 2 equal their human
    np.testing.assert_allclose(curve.mean["combined_js"], [0.020721 / 3, 0.0], atol=1e-6)


def test_each_k_is_an_independent_sample_drawn_as_the_official_code_does() -> None:
    rng = np.random.default_rng(3)
    labels = rng.integers(-1, 3, size=(6, 5))
    P = rng.dirichlet(np.ones(3), size=6)
    curve = sampled_curves(labels, P, repeats=2, seed=42)[ALL]
    expected = []
    for k in range(1, 6):  # the notebook: random.seed(42 + run), random.sample per clip
        per_run = []
        for run in range(2):
            draw = random.Random(42 + run)
            values = []
            for row, p in zip(labels, P, strict=True):
                answers = [int(x) for x in row if x >= 0]
                picked = draw.sample(answers, min(k, len(answers)))
                if picked:
                    q = np.bincount(picked, minlength=3) / len(picked)
                    values.append(jensenshannon(p, q, base=2) ** 2)
            per_run.append(np.mean(values))
        expected.append(np.mean(per_run))
    np.testing.assert_allclose(curve.mean["js"], expected, atol=1e-12)


def test_repeats_must_be_positive() -> None:
    with pytest.raises(ValueError, match="saturation_repeats"):
        sampled_curves(np.zeros((1, 2), dtype=int), np.array([[1.0]]), repeats=0)


# ------------------------------------------------------------------------ on a workspace


@pytest.fixture()
def synthetic_db(tmp_path: Path) -> tuple[Path, int]:
    path = tmp_path / "demo.db"
    build_demo(path, DemoSpec(n_clips=6, seed=5))
    spec = SyntheticSpec(dataset="demo", model="fake-alm", raters=5, seed=0)
    with Workspace.open(path) as ws:
        run = execute_synthetic(ws, spec, backend=FakeBackend()).run
    return path, run.id


def test_align_run_under_the_scaling_ambiguity_preset(synthetic_db: tuple[Path, int]) -> None:
    path, run_id = synthetic_db
    conventions = preset("scaling-ambiguity").with_overrides({"saturation_repeats": "3"})
    with Workspace.open(path) as ws:
        report = align_run(ws, "demo", run_id, seed=42, conventions=conventions)
        default = align_run(ws, "demo", run_id, orderings=4)
    assert report.saturation == "sampled-grid" and report.orderings == 3
    assert default.saturation == "nested-fit" and default.orderings == 4
    data = report.to_dict()
    assert data["conventions"]["preset"] == "scaling-ambiguity"
    assert "100 grid points" in data["saturation_definition"]
    assert "3 repeats of k sampled raters" in format_report(report)


def test_align_cli_takes_the_preset(synthetic_db: tuple[Path, int]) -> None:
    path, run_id = synthetic_db
    base = ["--db", str(path), "align", "-d", "demo", "--run", str(run_id), "--json"]
    out = CliRunner().invoke(cli, [*base, "--preset", "scaling-ambiguity"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert (data["saturation"], data["orderings"], data["seed"]) == ("sampled-grid", 5, 42)
    out = CliRunner().invoke(cli, [*base, "--set", "saturation=sampled-grid", "--seed", "7"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["seed"] == 7
    out = CliRunner().invoke(cli, [*base, "--set", "saturation=bogus"])
    assert out.exit_code == 2 and "saturation" in out.output  # a usage error
