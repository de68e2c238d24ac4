"""`ambiscope queue` through the real command group, on the hand-built priority workspace."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from ambiscope.core.browse.audit_queue import DEFAULT_TOP
from ambiscope.core.browse.priority import WEIGHTS
from ambiscope.tui.cli.main import main
from ambiscope.tui.cli.queue import queue
from tests.core.browse.test_priority import CLIPS, build


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("queue") / "w.db"
    build(path)
    return path


def invoke(db: Path, *args: str) -> click.testing.Result:
    return CliRunner().invoke(main, ["--db", str(db), "queue", *args])


def _json(db: Path, *args: str) -> dict:
    result = invoke(db, "--format", "json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_json_ranks_by_priority_and_names_the_weights(db: Path) -> None:
    out = _json(db)
    assert out["weights"] == dict(WEIGHTS)
    assert out["strategy"] == "wbon" and out["run"] == 1  # the run's preferred strategy
    assert "0.6*divergence" in out["formula"]
    clips = out["clips"]
    assert out["matched"] == len(CLIPS) + 1  # every clip of both datasets
    assert [c["rank"] for c in clips] == list(range(1, len(clips) + 1))
    assert clips[0]["key"] == "agree_wrong"
    scored = [c["priority"] for c in clips if c["priority"] is not None]
    assert scored == sorted(scored, reverse=True)
    assert clips[-1]["key"] == "nothing" and clips[-1]["priority"] is None
    first = clips[0]
    assert first["majority"] == "angry" and first["model_label"] == "happy"
    assert first["js"] > 0.5 and first["norm_entropy"] == pytest.approx(0.0, abs=1e-9)


def test_top_where_dataset_and_strategy(db: Path) -> None:
    assert len(_json(db, "--top", "3")["clips"]) == 3
    test_split = _json(db, "--where", "split:test -disagree")
    assert test_split["where"] == "split:test -disagree"
    keys = [c["key"] for c in test_split["clips"]]
    split_of = {k: "test" if i % 2 else "train" for i, k in enumerate(CLIPS)}
    assert keys and all(split_of[k] == "test" for k in keys)
    assert all(
        c["model_label"] is None or c["model_label"] == c["majority"] for c in test_split["clips"]
    )
    other = _json(db, "-d", "other")
    assert [c["key"] for c in other["clips"]] == ["elsewhere"]
    assert other["run"] is None and other["strategy"] is None  # no runs there: raters only
    by_vote = _json(db, "--strategy", "vote")
    assert by_vote["strategy"] == "vote"
    # its `vote` contradicts the unanimous humans and its `wbon` agrees with them
    assert by_vote["clips"][0]["key"] == "strategies_split"


def test_table_and_csv(db: Path) -> None:
    table = invoke(db, "--top", "4")
    assert table.exit_code == 0, table.output
    lines = table.output.splitlines()
    assert lines[0].startswith("audit queue: run #1 tiny · wbon · top 4 of 10 clips")
    assert lines[1].startswith("priority = 0.6*divergence + 0.25*strategies + 0.15*raters")
    assert lines[2].split()[:3] == ["#", "key", "priority"]
    assert lines[3].split()[1] == "agree_wrong" and len(lines) == 7
    text = invoke(db, "--format", "csv").output
    assert text.startswith("# priority = 0.6*divergence")
    rows = list(csv.DictReader(io.StringIO(text.split("\n", 1)[1])))
    assert [r["key"] for r in rows] == [c["key"] for c in _json(db)["clips"]]
    assert rows[-1]["priority"] == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--where", "split:tset"], "split:tset: no clip has split 'tset'; did you mean test?"),
        (["--where", "js>abc"], "js>abc: js takes a number"),
        (["--strategy", "nope"], "run #1 has no strategy 'nope' (strategies: vote, wbon)"),
        (["--run", "7"], "no run with id 7"),
        (["-d", "nope"], "no dataset 'nope'"),
        (["-d", "other", "--run", "1"], "--run 1 is a run of another dataset than --dataset"),
        (["-d", "other", "--strategy", "wbon"], "--strategy needs a run with predictions"),
    ],
)
def test_errors_are_one_line(db: Path, args: list[str], message: str) -> None:
    result = invoke(db, *args)
    assert result.exit_code == 1
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_top_must_be_positive_and_defaults_to_the_tui_queue(db: Path) -> None:
    assert invoke(db, "--top", "0").exit_code == 2
    (top,) = [p for p in queue.params if p.name == "top"]
    assert top.default == DEFAULT_TOP
