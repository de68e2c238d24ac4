"""Audio paths outside the dataset root: refused at import, unless explicitly allowed.

A workspace can be handed on; a manifest row naming `/etc/passwd` (or `../secret`, or a
symlink in the corpus pointing out) must not become a clip whose "audio" an export copies.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from ambiscope.core.corpora import import_corpus
from ambiscope.core.corpora.base import ImportFormatError, ImportOptions
from ambiscope.core.paths import allows_outside_root
from ambiscope.db import Workspace
from ambiscope.tui.cli.main import main


def _wav(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.zeros(800, dtype=np.float32), 8000)
    return path


def _manifest(folder: Path, path_text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    manifest = folder / "m.csv"
    manifest.write_text(f"clip,path,annotator,label\nc0,ok.wav,r1,sad\nc1,{path_text},r1,happy\n")
    _wav(folder / "ok.wav")
    return manifest


def _dump(path: Path) -> list[str]:
    with Workspace.open(path) as ws:
        return list(ws.conn.iterdump())


def test_cli_refuses_etc_passwd_in_one_line_and_writes_nothing(tmp_path):
    manifest = _manifest(tmp_path / "corpus", "/etc/passwd")
    db = tmp_path / "w.db"
    with Workspace.open(db, create=True):
        pass
    before = _dump(db)
    result = CliRunner().invoke(main, ["--db", str(db), "import", "manifest", str(manifest)])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output
    assert (
        f"m.csv:3: path: /etc/passwd is outside the dataset root {tmp_path / 'corpus'}"
        in (lines[0])
    )
    assert "--allow-outside-root" in lines[0]
    assert _dump(db) == before


def test_climbing_out_with_dotdot_is_refused(tmp_path):
    _wav(tmp_path / "secret.wav")
    manifest = _manifest(tmp_path / "corpus", "../secret.wav")
    with (
        Workspace.open(tmp_path / "w.db", create=True) as ws,
        pytest.raises(ImportFormatError, match=r"m\.csv:3: path: \.\./secret\.wav is outside"),
    ):
        import_corpus(ws, "manifest", manifest, ImportOptions())


def test_symlink_pointing_out_of_the_corpus_is_refused(tmp_path):
    outside = _wav(tmp_path / "private" / "x.wav")
    manifest = _manifest(tmp_path / "corpus", "link.wav")
    os.symlink(outside, tmp_path / "corpus" / "link.wav")
    os.symlink(tmp_path / "corpus" / "ok.wav", tmp_path / "corpus" / "inside.wav")
    with Workspace.open(tmp_path / "w.db", create=True) as ws:
        with pytest.raises(ImportFormatError, match=r"m\.csv:3: path: link\.wav is outside"):
            import_corpus(ws, "manifest", manifest, ImportOptions())
        manifest.write_text("clip,path,annotator,label\nc1,inside.wav,r1,happy\n")
        result = import_corpus(ws, "manifest", manifest, ImportOptions())  # link stays inside
        assert ws.find_clip(result.dataset.id, "c1").path == "inside.wav"


def test_symlink_out_of_a_corpus_folder_is_refused_for_every_format(tmp_path):
    """Folder formats build paths from listings; write_corpus re-checks every clip."""
    release = tmp_path / "IEMOCAP_full_release"
    fixture = Path(__file__).parent / "fixtures" / "iemocap" / "IEMOCAP_full_release"
    shutil.copytree(fixture, release)
    wav = release / "Session1" / "sentences" / "wav" / "Ses01F_impro01"
    wav.mkdir(parents=True)
    os.symlink(_wav(tmp_path / "private" / "x.wav"), wav / "Ses01F_impro01_F000.wav")
    with (
        Workspace.open(tmp_path / "w.db", create=True) as ws,
        pytest.raises(ImportFormatError, match=r"Ses01F_impro01_F000\.wav is outside"),
    ):
        import_corpus(ws, "iemocap", release, ImportOptions())


def test_label_studio_path_outside_the_root_is_refused(tmp_path):
    outside = _wav(tmp_path / "private" / "x.wav")
    folder = tmp_path / "ls"
    folder.mkdir()
    export = folder / "export.json"
    export.write_text(json.dumps([{"id": 7, "data": {"audio": str(outside)}, "annotations": []}]))
    with (
        Workspace.open(tmp_path / "w.db", create=True) as ws,
        pytest.raises(ImportFormatError, match=r"data\.audio: task id 7 .* is outside"),
    ):
        import_corpus(ws, "label-studio", export, ImportOptions(labels=("happy",)))


def test_allow_outside_root_is_stored_and_honoured(tmp_path):
    outside = _wav(tmp_path / "private" / "x.wav")
    manifest = _manifest(tmp_path / "corpus", str(outside))
    db = tmp_path / "w.db"
    args = ["--db", str(db), "import", "manifest", str(manifest), "--allow-outside-root"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    with Workspace.open(db) as ws:
        ds = ws.datasets()[0]
        assert ds.options["import"]["allow_outside_root"] is True
        assert allows_outside_root(ds.options)
        assert ws.find_clip(ds.id, "c1").path == str(outside)


def test_skip_bad_imports_an_outside_path_without_audio(tmp_path):
    manifest = _manifest(tmp_path / "corpus", "/etc/passwd")
    with Workspace.open(tmp_path / "w.db", create=True) as ws:
        result = import_corpus(ws, "manifest", manifest, ImportOptions(skip_bad=True))
        clip = ws.find_clip(result.dataset.id, "c1")
        assert clip.path is None and result.bad_lines == 1
        assert not allows_outside_root(result.dataset.options)
