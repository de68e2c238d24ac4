"""`ambiscope import --preset/--set`: the conventions applied at import and recorded."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from ambiscope.db import Workspace
from ambiscope.tui.cli.main import main
from tests.core.corpora.test_iemocap_conventions import write_release

FIXTURES = Path(__file__).resolve().parents[2] / "core" / "corpora" / "fixtures"


def invoke(db: Path, *args: str):
    return CliRunner().invoke(main, ["--db", str(db), *args])


def dataset_options(db: Path, name: str) -> dict:
    with Workspace.open(db) as ws:
        return ws.find_dataset(name).options


def test_scaling_preset_gives_four_classes_and_records_the_conventions(tmp_path):
    db = tmp_path / "w.db"
    release = write_release(tmp_path)
    result = invoke(db, "import", "iemocap", str(release), "--preset", "scaling-ambiguity")
    assert result.exit_code == 0, result.output
    assert "3 clips (3 new)" in result.output
    assert "labels neutral, happy, sad, angry; conventions: scaling-ambiguity" in result.output
    assert "only in-set votes are secondary: 1 dropped (secondary_only=drop)" in result.output
    options = dataset_options(db, "iemocap")
    assert options["conventions"]["preset"] == "scaling-ambiguity"
    assert options["conventions"]["label_projection"] == "4class"
    assert options["label_lists"] is True


def test_set_secondary_only_keep(tmp_path):
    db = tmp_path / "w.db"
    release = write_release(tmp_path)
    args = ("--preset", "scaling-ambiguity", "--set", "secondary_only=keep")
    result = invoke(db, "import", "iemocap", str(release), *args)
    assert result.exit_code == 0, result.output
    assert "4 clips (4 new)" in result.output
    assert "conventions: scaling-ambiguity + secondary_only=keep" in result.output
    assert "secondary: 1 kept with those votes (secondary_only=keep)" in result.output
    assert dataset_options(db, "iemocap")["conventions"]["overrides"] == {"secondary_only": "keep"}


def test_explicit_labels_override_the_preset_projection(tmp_path):
    db = tmp_path / "w.db"
    release = write_release(tmp_path)
    labels = "neutral,happy,sad,angry,frustrated"
    args = ("--preset", "scaling-ambiguity", "--labels", labels)
    result = invoke(db, "import", "iemocap", str(release), *args)
    assert result.exit_code == 0, result.output
    assert "labels neutral, happy, sad, angry, frustrated; conventions" in result.output
    assert "secondary" not in result.output


def test_scaling_preset_projects_msp_podcast(tmp_path):
    db = tmp_path / "w.db"
    source = str(FIXTURES / "msp_podcast" / "v2")
    result = invoke(db, "import", "msp-podcast", source, "--preset", "scaling-ambiguity")
    assert result.exit_code == 0, result.output
    assert "labels neutral, happy, sad, angry; conventions: scaling-ambiguity" in result.output
    assert "label_lists" not in dataset_options(db, "msp-podcast")


def test_workspace_default_conventions_without_preset(tmp_path):
    db = tmp_path / "w.db"
    release = write_release(tmp_path)
    result = invoke(db, "import", "iemocap", str(release))
    assert result.exit_code == 0, result.output
    assert "frustrated" in result.output and "; conventions: ambiscope\n" in result.output
    assert dataset_options(db, "iemocap")["conventions"]["preset"] == "ambiscope"


def test_bad_set_is_a_one_line_usage_error(tmp_path):
    db = tmp_path / "w.db"
    release = write_release(tmp_path)
    for bad, named in (("nosuch=1", "nosuch"), ("secondary_only=maybe", "secondary_only")):
        result = invoke(db, "import", "iemocap", str(release), "--set", bad)
        assert result.exit_code == 2, result.output
        errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
        assert len(errors) == 1 and named in errors[0], result.output
        assert "Traceback" not in result.output
    assert not db.exists()  # refused before the workspace was created
