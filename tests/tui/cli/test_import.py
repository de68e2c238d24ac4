"""`ambiscope import` and `stats` through the CLI, on fixtures and the real CREMA-D tables."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from ambiscope.tui.cli.main import main
from tests.core.corpora.test_crema_d import CREMA, needs_crema

FIXTURES = Path(__file__).resolve().parents[2] / "core" / "corpora" / "fixtures"


def invoke(db: Path, *args: str):
    return CliRunner().invoke(main, ["--db", str(db), *args])


def test_iemocap_import_then_stats(tmp_path):
    db = tmp_path / "w.db"
    root = FIXTURES / "iemocap" / "IEMOCAP_full_release"
    result = invoke(db, "import", "iemocap", str(root), "--merge-excited")
    assert result.exit_code == 0, result.output
    assert "imported iemocap (iemocap)" in result.output
    again = invoke(db, "import", "iemocap", str(root), "--merge-excited")
    assert "(0 new)" in again.output
    stats = json.loads(invoke(db, "stats", "--json").output)["datasets"][0]
    assert "excited" not in stats["labels"]
    assert stats["votes_by_kind"]["actor"] > 0
    assert stats["agreement"]["fleiss_kappa"] is not None


def test_msp_four_class(tmp_path):
    db = tmp_path / "w.db"
    result = invoke(
        db,
        "import",
        "msp-podcast",
        str(FIXTURES / "msp_podcast" / "v2"),
        "--labels",
        "4class",
        "--name",
        "msp4",
    )
    assert result.exit_code == 0, result.output
    assert "labels neutral, happy, sad, angry" in result.output


def test_bad_manifest_line_names_file_and_line(tmp_path):
    manifest = tmp_path / "votes.csv"
    manifest.write_text("clip,path,annotator,label,weight\nc1,,r1,happy,1\nc1,,r2,sad,-2\n")
    db = tmp_path / "w.db"
    result = invoke(db, "import", "manifest", str(manifest))
    assert result.exit_code == 1
    assert "votes.csv:3" in result.output and "weight" in result.output
    assert "Traceback" not in result.output
    skipped = invoke(db, "import", "manifest", str(manifest), "--skip-bad")
    assert skipped.exit_code == 0
    assert "skipped 1 bad lines" in skipped.output


def test_unknown_format_and_label_are_one_line_errors(tmp_path):
    manifest = tmp_path / "votes.csv"
    manifest.write_text("clip,path,annotator,label\nc1,,r1,bored\n")
    db = tmp_path / "w.db"
    result = invoke(db, "import", "ravdess", str(manifest))
    assert result.exit_code == 2  # a usage error: FORMAT lists the registered formats
    assert "'ravdess' is not one of" in result.output and "'crema-d'" in result.output
    result = invoke(db, "import", "manifest", str(manifest))
    assert result.exit_code == 1 and "'bored' x1" in result.output
    mapped = invoke(db, "import", "manifest", str(manifest), "--map", "bored=neutral")
    assert mapped.exit_code == 0, mapped.output


@needs_crema
def test_real_crema_d_import_and_stats(tmp_path):
    db = tmp_path / "w.db"
    result = invoke(db, "import", "crema-d", str(CREMA))
    assert result.exit_code == 0, result.output
    assert "7442 clips (7442 new), 68,568 votes (22069 new vote rows)" in result.output
    stats = json.loads(invoke(db, "stats", "--json").output)["datasets"][0]
    assert stats["clips"] == 7442 and stats["clips_with_audio"] == 0
    # anonymous crowd votes are stored as weighted rows: stats counts votes, not rows
    assert (stats["votes"], stats["votes_by_kind"], stats["vote_rows"]) == (
        68568,
        {"human": 68568},
        22069,
    )
    text = invoke(db, "stats").output
    assert "votes: 68,568 (human 68,568) in 22,069 vote rows" in text
    assert sum(stats["ambiguity"].values()) == 7442
    assert 0 < stats["agreement"]["krippendorff_alpha"] < 1
    face = invoke(db, "import", "crema-d", str(CREMA), "--modality", "face")
    assert face.exit_code == 1 and "--replace" in face.output
