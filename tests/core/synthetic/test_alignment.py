"""Alignment of synthetic raters with human distributions as K grows, and the saturation fit."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from ambiscope.core.demo import DemoSpec, build_demo
from ambiscope.core.synthetic.alignment import (
    ALL,
    SaturationFit,
    align_run,
    alignment_curves,
    fit_saturation,
    format_report,
    plot_report,
    saturation_model,
    saturation_point,
)
from ambiscope.core.synthetic.raters import execute_synthetic
from ambiscope.core.synthetic.spec import SyntheticSpec
from ambiscope.db import Workspace
from ambiscope.tui.cli.main import main as cli
from tests.core.synthetic.test_raters import FakeBackend


def _drawn_from(P: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k raters per clip, each voting a label drawn from that clip's distribution."""
    cum = P.cumsum(axis=1)
    u = rng.random((len(P), k))
    return (u[:, :, None] > cum[:, None, :]).sum(axis=2)


# ------------------------------------------------------------------------ curves


def test_raters_drawn_from_the_human_distribution_converge_to_it() -> None:
    rng = np.random.default_rng(0)
    P = rng.dirichlet(np.full(4, 0.7), size=200)
    labels = _drawn_from(P, 60, rng)
    groups = np.array(["low", "medium", "high"] * 66 + ["low", "low"])
    curves = alignment_curves(labels, P, P * 8, groups=groups, orderings=5, seed=1)
    assert list(curves) == ["low", "medium", "high", ALL]
    js, bc = curves[ALL].mean["js"], curves[ALL].mean["bc"]
    assert js[0] > js[4] > js[19] > js[-1]
    assert js[0] > 0.15 and js[-1] < 0.02
    assert bc[0] < bc[4] < bc[19] < bc[-1] and bc[-1] > 0.98
    assert np.all(curves[ALL].sd["js"] >= 0) and curves[ALL].sd["js"][-1] < 1e-12  # all raters
    assert curves[ALL].n_clips == 200 and curves["medium"].n_clips == 66
    # pooling votes from the same distribution keeps the combined one close to human
    assert curves[ALL].mean["combined_js"].max() < 0.05


def test_raters_from_another_distribution_do_not_converge() -> None:
    rng = np.random.default_rng(1)
    P = np.tile([0.7, 0.1, 0.1, 0.1], (50, 1))
    labels = _drawn_from(np.tile([0.1, 0.1, 0.1, 0.7], (50, 1)), 30, rng)
    curve = alignment_curves(labels, P, orderings=3)[ALL]
    assert curve.mean["js"][-1] > 0.2


def test_missing_votes_leave_clips_out_until_a_rater_answers() -> None:
    P = np.array([[1.0, 0.0], [0.5, 0.5]])
    labels = np.array([[0, -1, -1], [-1, -1, -1]])
    curve = alignment_curves(labels, P, orderings=1, seed=0)[ALL]
    # clip 2 never has a vote; clip 1 only once rater 0 has been added
    assert curve.n_used.max() == 1
    assert curve.mean["js"][-1] == pytest.approx(0.0)
    assert np.isfinite(curve.mean["combined_js"]).all()


def test_orderings_are_seeded() -> None:
    rng = np.random.default_rng(2)
    P = rng.dirichlet(np.ones(3), size=30)
    labels = _drawn_from(P, 8, rng)
    a = alignment_curves(labels, P, orderings=4, seed=9)[ALL]
    b = alignment_curves(labels, P, orderings=4, seed=9)[ALL]
    np.testing.assert_array_equal(a.mean["js"], b.mean["js"])
    with pytest.raises(ValueError, match="orderings"):
        alignment_curves(labels, P, orderings=0)


# ------------------------------------------------------------------------ saturation


@pytest.mark.parametrize(("a", "b", "c"), [(0.08, -0.35, 0.3), (0.95, 0.4, 0.6), (0.2, 0.1, 0.1)])
def test_fit_recovers_known_parameters(a: float, b: float, c: float) -> None:
    k = np.arange(1, 31, dtype=float)
    y = saturation_model(k, a, b, c) + np.random.default_rng(3).normal(0, 0.002, len(k))
    fit = fit_saturation(k, y)
    assert fit.ok
    assert fit.a == pytest.approx(a, abs=0.01)
    assert fit.b == pytest.approx(b, rel=0.1, abs=0.02)
    assert fit.c == pytest.approx(c, rel=0.15)
    assert fit.rmse < 0.004
    assert fit.k_sat == math.ceil(1 + math.log(10) / fit.c)


def test_saturation_point_definition() -> None:
    a, b, c = 0.1, -0.5, 0.4
    k_sat = saturation_point(c, b)
    f = saturation_model(np.arange(1, 40), a, b, c)
    within = np.abs(f - a) <= 0.1 * abs(f[0] - a)
    assert within[k_sat - 1] and not within[k_sat - 2]
    assert int(np.argmax(within)) + 1 == k_sat
    assert saturation_point(50.0) == 2 and saturation_point(1.0, 0.0) == 1


def test_fit_edge_cases() -> None:
    assert not fit_saturation([1, 2], [0.3, 0.2]).ok
    flat = fit_saturation([1, 2, 3, 4], [0.5, 0.5, 0.5, 0.5])
    assert flat.ok and flat.k_sat == 1 and flat.a == 0.5
    fit = fit_saturation([1, 2, 3, float("nan"), 5], [0.5, 0.3, 0.2, 0.1, 0.12])
    assert fit.ok and fit.observed_k == 5
    linear = fit_saturation(np.arange(1, 11), 0.5 - 0.01 * np.arange(1, 11))
    assert linear.ok and linear.k_sat is None and "linear" in linear.message
    extrapolated = SaturationFit(True, 0, 1, 0.01, 0, saturation_point(0.01), 10)
    assert extrapolated.extrapolated and extrapolated.to_dict()["extrapolated"]


# ------------------------------------------------------------------------ on a workspace


@pytest.fixture()
def synthetic_db(tmp_path: Path) -> tuple[Path, int]:
    path = tmp_path / "demo.db"
    build_demo(path, DemoSpec(n_clips=12, seed=5))
    spec = SyntheticSpec(dataset="demo", model="fake-alm", raters=6, seed=0)
    with Workspace.open(path) as ws:
        run = execute_synthetic(ws, spec, backend=FakeBackend()).run
    return path, run.id


def test_align_run_report(synthetic_db: tuple[Path, int], tmp_path: Path) -> None:
    path, run_id = synthetic_db
    with Workspace.open(path) as ws:
        report = align_run(ws, "demo", run_id, orderings=4, seed=0)
    assert report.raters == 6 and report.n_clips == 12
    assert (report.answers, report.invalid) == (72, 24)
    # raters 1, 2 always say happy / sad: partial agreement, kappa well below 1
    assert -1 <= report.kappa_synthetic < 0.6
    assert math.isfinite(report.kappa_human)
    assert set(report.curves) >= {ALL} and report.curves[ALL].k.tolist() == [1, 2, 3, 4, 5, 6]
    assert set(report.fits[ALL]) == {"js", "bc"}
    text = format_report(report)
    assert "Fleiss' kappa" in text and "fit JS" in text and "saturation k=" in text
    assert max(len(line) for line in text.splitlines()) <= 80
    data = report.to_dict()
    json.dumps(data, allow_nan=False)
    assert data["curves"][ALL]["n_clips"] == 12
    pytest.importorskip("matplotlib")
    png = plot_report(report, tmp_path / "plots" / "align.png")
    assert png is not None and png.read_bytes()[:4] == b"\x89PNG"


def test_align_refuses_a_model_run(synthetic_db: tuple[Path, int]) -> None:
    from ambiscope.db import RunIn

    path, _ = synthetic_db
    with Workspace.open(path) as ws:
        ds = ws.get_dataset("demo")
        run = ws.add_run(RunIn(ds.id, "m", "transformers", "label", 4))
        with pytest.raises(ValueError, match="not a synthetic"):
            align_run(ws, "demo", run.id)


def test_align_cli(synthetic_db: tuple[Path, int], tmp_path: Path) -> None:
    path, run_id = synthetic_db
    runner = CliRunner()
    base = ["--db", str(path), "align", "-d", "demo", "--run", str(run_id), "--orderings", "3"]
    out = runner.invoke(cli, [*base, "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert data["raters"] == 6 and "saturation_definition" in data
    out = runner.invoke(cli, [*base, "--plot", str(tmp_path / "a.png")])
    assert out.exit_code == 0, out.output
    assert "all clips (n=12)" in out.output
    out = runner.invoke(cli, ["--db", str(path), "align", "-d", "demo", "--run", "99"])
    assert out.exit_code == 1 and "no run with id 99" in out.output
