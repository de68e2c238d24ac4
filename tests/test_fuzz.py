"""Fuzzing the importers and the filter language (issue 12).

Every case ends in success or in an error the CLI prints as one line (`tui/cli/main.py`
turns WorkspaceError, ValueError and OSError into `Error: <first line>`), never another
exception, and a failed case leaves the workspace as it was (`iterdump()` compared before
and after). Inputs are the corpus fixtures mutated byte- and line-wise (truncation, random
or non-UTF-8 bytes, dropped/duplicated lines, 200,000-character fields, deep JSON) and
random filter strings, from hypothesis with fixed seeds so a run is repeatable and fast.
One import in five runs against a full disk (SQLite's `max_page_count`).

The figures (cases, successes, one-line refusals, tracebacks, half-writes) are printed at
the end of the module for the release note.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ambiscope.core.browse.query import BrowseQuery, count_rows, select_clip_ids
from ambiscope.core.corpora import import_corpus
from ambiscope.core.corpora.base import ImportOptions
from ambiscope.db import Workspace, WorkspaceError
from tests.core.corpora.test_crema_d import GOOD, HEADER

FIXTURES = Path(__file__).parent / "core" / "corpora" / "fixtures"
ONE_LINE_ERRORS = (WorkspaceError, ValueError, OSError)
"""What the CLI's error handler prints as one line (tui/cli/main.py)."""

FIGURES: Counter[str] = Counter()

FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


# ----------------------------------------------------------------------- corpora
def _crema(root: Path) -> Path:
    table = root / "processedResults" / "tabulatedVotes.csv"
    table.parent.mkdir(parents=True)
    table.write_text("\n".join([HEADER, *GOOD]) + "\n")
    return root


def _copy(fixture: str) -> Callable[[Path], Path]:
    def make(root: Path) -> Path:
        return Path(shutil.copytree(FIXTURES / fixture, root, dirs_exist_ok=True))

    return make


CORPORA: dict[str, tuple[str, Callable[[Path], Path], tuple[str, ...]]] = {
    # name: (format, build the corpus under a folder, files to mutate relative to it)
    "manifest-csv": ("manifest", _copy("manifest"), ("votes.csv", "counts.csv")),
    "manifest-jsonl": ("manifest", _copy("manifest"), ("votes.jsonl", "counts.jsonl")),
    "label-studio": ("label-studio", _copy("label_studio"), ("export.json", "export-min.json")),
    "crema-d": ("crema-d", _crema, ("processedResults/tabulatedVotes.csv",)),
    "msp-podcast": (
        "msp-podcast",
        _copy("msp_podcast"),
        (
            "v2/Labels/labels_detailed.csv",
            "v2/Labels/labels_consensus.csv",
            "packed/Labels/labels_detailed.csv",
            "json/Labels/labels_detailed.json",
            "json/Labels/labels_consensus.json",
            "text/Labels/labels.txt",
        ),
    ),
    "iemocap": (
        "iemocap",
        _copy("iemocap"),
        tuple(
            str(p.relative_to(FIXTURES / "iemocap"))
            for p in sorted((FIXTURES / "iemocap").rglob("*.txt"))
        ),
    ),
}


def _import_target(fmt: str, root: Path, mutated: str) -> Path:
    """What `import FORMAT PATH` is given: the file, or the release folder holding it."""
    if fmt in ("manifest", "label-studio"):
        return root / mutated
    if fmt == "msp-podcast":
        return root / mutated.split("/")[0]
    if fmt == "iemocap":
        return root / "IEMOCAP_full_release"
    return root


# --------------------------------------------------------------------- mutations
KINDS = ("truncate", "insert", "replace", "drop-line", "dup-line", "huge-field", "deep", "bytes")


def _mutate(data: bytes, kind: str, where: int, junk: bytes) -> bytes:
    at = where % (len(data) + 1)
    lines = data.splitlines(keepends=True) or [b""]
    line = where % len(lines)
    if kind == "truncate":
        return data[:at]
    if kind == "insert":
        return data[:at] + junk + data[at:]
    if kind == "replace":
        return data[:at] + junk + data[at + len(junk) :]
    if kind == "drop-line":
        return b"".join(lines[:line] + lines[line + 1 :])
    if kind == "dup-line":
        return b"".join(lines[: line + 1] + lines[line:])
    if kind == "huge-field":
        return data[:at] + b"x" * 200_000 + data[at:]
    if kind == "deep":
        return data[:at] + b"[" * 100_000 + data[at:]
    return junk * 64  # "bytes": the file is replaced by noise


mutations = st.lists(
    st.tuples(
        st.sampled_from(KINDS),
        st.integers(min_value=0, max_value=1 << 20),
        st.binary(min_size=1, max_size=6) | st.sampled_from([b"\xff", b"\x00", b'"', b"\n"]),
    ),
    min_size=1,
    max_size=3,
)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace that already holds a dataset, so a half-write would have company."""
    path = tmp_path_factory.mktemp("fuzz") / "template.db"
    with Workspace.open(path, create=True) as ws:
        import_corpus(ws, "manifest", FIXTURES / "manifest" / "votes.csv", ImportOptions())
    return path


def _check_case(group: str, ws: Workspace, action: Callable[[], object]) -> None:
    """Run one case; count it; fail on a traceback or on a write left behind."""
    before = list(ws.conn.iterdump())
    FIGURES[f"{group} cases"] += 1
    try:
        action()
    except ONE_LINE_ERRORS as exc:
        message = str(exc)
        if not message or "\n" in message:
            FIGURES["tracebacks"] += 1
            raise AssertionError(f"not one line: {message!r}") from exc
        after = list(ws.conn.iterdump())
        if ws.conn.in_transaction or after != before:
            FIGURES["half-writes"] += 1
            raise AssertionError(f"workspace changed after: {message}") from exc
        FIGURES[f"{group} refused"] += 1
    except BaseException:
        FIGURES["tracebacks"] += 1
        raise
    else:
        FIGURES[f"{group} ok"] += 1
    FIGURES.setdefault("tracebacks", 0)
    FIGURES.setdefault("half-writes", 0)


@pytest.mark.parametrize("corpus", sorted(CORPORA))
@FUZZ
@given(data=st.data(), changes=mutations)
def test_mutated_corpus_imports_or_is_refused_in_one_line(
    template: Path, corpus: str, data: st.DataObject, changes: list[tuple[str, int, bytes]]
) -> None:
    fmt, build, files = CORPORA[corpus]
    mutated = data.draw(st.sampled_from(files), label="file")
    with tempfile.TemporaryDirectory() as tmp:
        root = build(Path(tmp) / "corpus")
        target = root / mutated
        content = target.read_bytes()
        for kind, where, junk in changes:
            content = _mutate(content, kind, where, junk)
        target.write_bytes(content)
        db = Path(tmp) / "w.db"
        shutil.copyfile(template, db)
        with Workspace.open(db) as ws:
            if data.draw(st.integers(0, 4), label="disk full") == 0:  # 1 case in 5
                pages = ws.conn.execute("PRAGMA page_count").fetchone()[0]
                ws.conn.execute(f"PRAGMA max_page_count = {pages}")
            source = _import_target(fmt, root, mutated)
            _check_case("import", ws, lambda: import_corpus(ws, fmt, source, ImportOptions()))


# ----------------------------------------------------------------------- filters
WORDS = st.sampled_from(
    [
        "label:happy", "label:nope", "intended:sad", "ambiguity:high", "ambiguity:x",
        "entropy>0.5", "votes>=2", "js<0.3", "bc>", "flagged", "-tagged", "note", "voted",
        "audio", "agree", "failed", "flag:x", 'tag:"a b"', "key:%_\\\\", "dataset:votes",
        "split:", "speaker:r1", "gender:F", "unknown:field", "-", '"', "'", "\\", "%", "_",
        "'; DROP TABLE clips; --", "c1", "é", "\U0001d11e", "\x00",
    ]
)  # fmt: skip
filters = (
    st.text(max_size=80)
    | st.lists(WORDS | st.text(min_size=1, max_size=12), max_size=12).map(" ".join)
    | st.builds(lambda w, n: " ".join([w] * n), WORDS, st.integers(50, 3000))
    | st.builds(lambda c, n: c * n, st.sampled_from(["x", "%", "é", "a "]), st.integers(1, 90_000))
)


@settings(FUZZ, max_examples=200)
@given(text=filters)
def test_random_filters_select_or_are_refused_in_one_line(template: Path, text: str) -> None:
    conn = sqlite3.connect(f"file:{template}?mode=ro", uri=True)
    try:
        ws = Workspace(conn, template, readonly=True)
        _check_case("filter", ws, lambda: select_clip_ids(conn, text))
        query = BrowseQuery(filter_text=text)
        _check_case("filter", ws, lambda: count_rows(conn, query))
    finally:
        conn.close()


def test_fuzz_found_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    """Runs last in this module: prints the figures the release note quotes."""
    with capsys.disabled():
        print("\nfuzz figures: " + ", ".join(f"{k} {v}" for k, v in sorted(FIGURES.items())))
    assert FIGURES["tracebacks"] == 0 and FIGURES["half-writes"] == 0
