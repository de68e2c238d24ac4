"""The label-studio export serves its audio: URLs below a document root, README, refusals.

Label Studio 1.23 answers `/data/local-files/?d=D` with DOCUMENT_ROOT joined to D as
Django decodes the query string (`+` is a space there), after `posixpath.normpath`
(io_storages/localfiles/views.py, `localfiles_data`); `_served_file` does the same, so a
URL that resolves here resolves in Label Studio.
"""

from __future__ import annotations

import json
import posixpath
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from click.testing import CliRunner

from ambiscope.core.export._common import ExportError
from ambiscope.core.export.label_studio import LS_URL_PREFIX
from ambiscope.core.export.subset import SubsetOptions, export_subset
from ambiscope.db import Workspace
from ambiscope.tui.cli.main import main
from tests.core.test_export_data import demo_db, demo_template  # noqa: F401

WHERE = "split:test ambiguity:high"


def _export(db: Path, out: Path, **extra: str) -> None:
    with Workspace.open(db) as ws:
        export_subset(ws, out, SubsetOptions(where=WHERE, format="label-studio", extra=extra))


def _tasks(out: Path) -> list[dict]:
    return json.loads((out / "tasks.json").read_text(encoding="utf-8"))


def _served_file(root: Path, url: str) -> Path:
    """The file Label Studio serves for a task's audio URL under DOCUMENT_ROOT=root."""
    assert url.startswith(LS_URL_PREFIX)
    (d,) = parse_qs(urlsplit(url).query)["d"]
    return root / posixpath.normpath(d).lstrip("/")


def test_default_urls_are_relative_to_out(demo_db: Path, tmp_path: Path) -> None:  # noqa: F811
    out = tmp_path / "ls"
    _export(demo_db, out)
    tasks = _tasks(out)
    assert tasks and all(t["data"]["audio"].startswith(LS_URL_PREFIX + "audio/") for t in tasks)
    assert all(_served_file(out, t["data"]["audio"]).is_file() for t in tasks)
    options = json.loads((out / "provenance.json").read_text())["options"]
    assert options["ls_root"] == str(out) and options["ls_out"] == ""


def test_two_exports_under_one_root_resolve_to_their_files(
    demo_db: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    root = tmp_path / "ls root"
    (root / "exports").mkdir(parents=True)
    outs = [root / "exports" / "a+b c", root / "été"]
    for out in outs:
        _export(demo_db, out, ls_root=str(root))
    for out in outs:
        tasks = _tasks(out)
        for task in tasks:
            served = _served_file(root, task["data"]["audio"])
            assert served.parent == out / "audio" and served.is_file()
            assert " " not in task["data"]["audio"] and "+" not in task["data"]["audio"]
        provenance = json.loads((out / "provenance.json").read_text())
        assert provenance["options"]["ls_root"] == str(root)
        assert provenance["options"]["ls_out"] == out.relative_to(root).as_posix()
        assert {t["data"]["dataset"] for t in tasks} == {"demo"}
        assert all(isinstance(t["data"]["clip_id"], int) for t in tasks)


def test_out_named_through_a_symlink_into_the_root(
    demo_db: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "link").symlink_to(root)
    _export(demo_db, tmp_path / "link" / "x", ls_root=str(root))
    for task in _tasks(root / "x"):
        assert task["data"]["audio"].startswith(LS_URL_PREFIX + "x/audio/")
        assert _served_file(root, task["data"]["audio"]).is_file()


def test_readme_names_the_paths_and_the_steps(demo_db: Path, tmp_path: Path) -> None:  # noqa: F811
    root = tmp_path / "root"
    out = root / "batch1"
    root.mkdir()
    _export(demo_db, out, ls_root=str(root))
    readme = (out / "README.md").read_text(encoding="utf-8")
    assert "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true" in readme
    assert f"LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT={root}\n" in readme
    assert f"    {out / 'audio'}\n" in readme  # the Local Storage path, absolute
    assert "POST /api/storages/localfiles/" in readme and "labeling_config.xml" in readme
    assert "/api/token/refresh/" in readme and "401" in readme
    assert "ambiscope import label-studio EXPORT.json" in readme
    assert f"{len(_tasks(out))} tasks" in readme


def test_out_outside_the_root_is_refused_before_writing(
    demo_db: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    root = tmp_path / "root"
    root.mkdir()
    out = tmp_path / "elsewhere"
    with pytest.raises(ExportError, match="not inside --ls-root") as err:
        _export(demo_db, out, ls_root=str(root))
    assert "\n" not in str(err.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["root", "ws.db"]
    with pytest.raises(ExportError, match="not a directory"):
        _export(demo_db, root / "x", ls_root=str(tmp_path / "missing"))


def test_cli_ls_root(demo_db: Path, tmp_path: Path) -> None:  # noqa: F811
    root = tmp_path / "root"
    root.mkdir()
    out = root / "sub" / "ls"
    args = ["--db", str(demo_db), "export", "subset", "--where", WHERE]
    result = CliRunner().invoke(
        main, [*args, "--format", "label-studio", "--ls-root", str(root), str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "README.md" in result.output and str(root) in result.output
    task = _tasks(out)[0]
    assert task["data"]["audio"].startswith(LS_URL_PREFIX + "sub/ls/audio/")
    outside = CliRunner().invoke(
        main, [*args, "--format", "label-studio", "--ls-root", str(root), str(tmp_path / "o")]
    )
    assert outside.exit_code == 1 and "not inside --ls-root" in outside.output
    wrong = CliRunner().invoke(
        main, [*args, "--format", "csv", "--ls-root", str(root), str(root / "c")]
    )
    assert wrong.exit_code == 2 and "--ls-root does not apply to --format csv" in wrong.output
    assert not (tmp_path / "o").exists() and not (root / "c").exists()
