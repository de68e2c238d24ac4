"""Issue 16 (8): a mistyped filter is an error that says what was meant, never a quiet
text search or an empty table: typed values, fields ("did you mean") and, given the
workspace, the values present."""

from __future__ import annotations

from pathlib import Path

import pytest

from ambiscope.core.browse import query as browse
from ambiscope.core.browse.filters import FilterError, parse_filter
from ambiscope.core.browse.query import BrowseQuery
from ambiscope.core.reference.human import refresh_human
from ambiscope.db import ClipIn, VoteIn, Workspace

KNOWN = {
    "dataset": ("crema", "demo"),
    "split": ("test", "train", "val"),
    "gender": ("F", "M"),
    "label": ("angry", "happy", "neutral"),
    "intended": ("happy",),
}


def refused(text: str, known: dict[str, tuple[str, ...]] | None = None) -> str:
    with pytest.raises(FilterError) as info:
        parse_filter(text, known=None if known is None else known.__getitem__)
    return str(info.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("js>abc", "js>abc: js takes a number after '>', not 'abc' (e.g. js>0.3)"),
        ("entropy>", "entropy>: entropy takes a number after '>' (e.g. entropy>0.5)"),
        (
            "-votes>=many",
            "-votes>=many: votes takes a number after '>=', not 'many' (e.g. votes>=5)",
        ),
        ("BC<1..2", "BC<1..2: bc takes a number after '<', not '1..2' (e.g. bc<0.5)"),
        ("entropy:0.5", "entropy:0.5: entropy takes a comparison with a number (e.g. entropy>0.5)"),
        ("split>3", "split>3: split is not a number; write split:VALUE"),
        ("split:", "split:: split needs a value (split:VALUE)"),
    ],
)
def test_typed_values_are_checked(text: str, message: str) -> None:
    assert refused(text) == message


@pytest.mark.parametrize(
    ("text", "value"),
    [("entropy>.5", 0.5), ("votes>=5.", 5.0), ("js<1e-1", 0.1), ("bc=-0", 0.0)],
)
def test_numbers_in_any_usual_spelling_compile(text: str, value: float) -> None:
    assert parse_filter(text).params == (value,)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("splt:train", "splt:train: unknown filter field 'splt'; did you mean split?"),
        ("Gendr:F", "Gendr:F: unknown filter field 'gendr'; did you mean gender?"),
        ("entrpy>0.5", "entrpy>0.5: unknown filter field 'entrpy'; did you mean entropy?"),
        (
            "colour:red",
            "colour:red: unknown filter field 'colour'; fields: dataset, split, speaker, "
            "gender, label, intended, ambiguity, flag, tag, rater, key, js, bc, entropy, votes",
        ),
    ],
)
def test_unknown_fields_get_a_did_you_mean(text: str, message: str) -> None:
    assert refused(text) == message


def test_plain_words_stay_text_search() -> None:
    flt = parse_filter("eleven a=b 100%")
    assert flt.params == ("%eleven%", "%eleven%", "%a=b%", "%a=b%", "%100\\%%", "%100\\%%")
    assert not flt.needs_prediction


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "split:tset",
            "split:tset: no clip has split 'tset'; did you mean test? (splits: test, train, val)",
        ),
        (
            "-split:tset",
            "-split:tset: no clip has split 'tset'; did you mean test? (splits: test, train, val)",
        ),
        ("gender:X", "gender:X: no clip has gender 'X' (genders: F, M)"),
        (
            "label:surprised",
            "label:surprised: no clip has majority label 'surprise' "
            "(majority labels: angry, happy, neutral)",
        ),
        (
            "label:hapy",
            "label:hapy: unknown emotion label 'hapy'; did you mean happy? "
            "(majority labels: angry, happy, neutral)",
        ),
        ("intended:sad", "intended:sad: no clip has intended label 'sad' (intended labels: happy)"),
        (
            "dataset:dmeo",
            "dataset:dmeo: no clip has dataset 'dmeo'; did you mean demo? (datasets: crema, demo)",
        ),
    ],
)
def test_values_missing_from_the_workspace_list_the_valid_ones(text: str, message: str) -> None:
    assert refused(text, KNOWN) == message


def test_values_present_pass_with_synonyms_and_case_blind_genders() -> None:
    flt = parse_filter("split:val gender:f label:anger intended:happy dataset:demo", KNOWN.get)
    assert flt.params == ("val", "f", "angry", "happy", "demo")


def test_a_field_without_values_and_a_long_list() -> None:
    assert refused("split:train", {"split": ()}) == "split:train: no clip has any split"
    many = {"split": tuple(f"fold{i:02d}" for i in range(15))}
    assert refused("split:x", many) == (
        "split:x: no clip has split 'x' (splits: fold00, fold01, fold02, fold03, fold04, "
        "fold05, fold06, fold07, fold08, fold09, fold10, fold11, ... (15 in all))"
    )


def test_only_the_fields_named_are_looked_up() -> None:
    asked: list[str] = []

    def known(field: str) -> tuple[str, ...]:
        asked.append(field)
        return KNOWN[field]

    parse_filter("split:train eleven speaker:s1 entropy>0.5 flag:x", known)
    assert asked == ["split"]


# ----------------------------------------------------------------- against a workspace
@pytest.fixture
def ws(tmp_path: Path):
    """Two datasets: `toy` (splits train/test, genders F/f/M, majority happy/sad) and
    `other` (split dev, no votes)."""
    with Workspace.open(tmp_path / "w.db", create=True) as ws:
        toy = ws.add_dataset("toy", "manifest", ["neutral", "happy", "sad"])
        other = ws.add_dataset("other", "manifest", ["neutral", "happy", "sad"])
        ws.add_clips(
            toy.id,
            [
                ClipIn("a", split="train", gender="F", intended_label="happy"),
                ClipIn("b", split="test", gender="M"),
                ClipIn("c", split="test", gender="f"),
            ],
        )
        ws.add_clips(other.id, [ClipIn("d", split="dev")])
        ids = ws.clip_ids(toy.id)
        ann = ws.ensure_annotators(toy.id, [("r1", "human")])
        ws.add_votes(
            toy.id,
            [VoteIn(ids["a"], ann["r1"], "happy"), VoteIn(ids["b"], ann["r1"], "sad")],
        )
        refresh_human(ws, toy)
        ws.toy_id, ws.other_id = toy.id, other.id  # type: ignore[attr-defined]
        yield ws


def test_known_values_come_from_the_workspace(ws) -> None:
    c = ws.conn
    assert browse.known_values(c, "split") == ("dev", "test", "train")
    assert browse.known_values(c, "split", ws.toy_id) == ("test", "train")
    assert browse.known_values(c, "gender") == ("F", "M")
    assert browse.known_values(c, "label") == ("happy", "sad")
    assert browse.known_values(c, "intended") == ("happy",)
    assert browse.known_values(c, "dataset", ws.toy_id) == ("other", "toy")


def test_check_filter_refuses_values_not_in_the_query_dataset(ws) -> None:
    c = ws.conn
    assert browse.check_filter(c, BrowseQuery(filter_text="split:dev")).params == ("dev",)
    with pytest.raises(FilterError) as info:
        browse.check_filter(c, BrowseQuery(dataset_id=ws.toy_id, filter_text="split:dev"))
    assert str(info.value) == "split:dev: no clip has split 'dev' (splits: test, train)"
    with pytest.raises(FilterError, match=r"no clip has any majority label"):
        browse.check_filter(c, BrowseQuery(dataset_id=ws.other_id, filter_text="label:sad"))


def test_known_values_follow_new_data(ws) -> None:
    c = ws.conn
    assert browse.known_values(c, "split", ws.other_id) == ("dev",)
    ws.add_clips(ws.other_id, [ClipIn("e", split="holdout")])
    assert browse.known_values(c, "split", ws.other_id) == ("dev", "holdout")


def test_a_filter_that_selects_clips_skips_the_reads_unless_a_check_is_negated(
    ws, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[str] = []
    real = browse.known_values

    def known_values(conn, field, dataset_id=None):
        asked.append(field)
        return real(conn, field, dataset_id)

    monkeypatch.setattr(browse, "known_values", known_values)
    browse.check_filter(ws.conn, BrowseQuery(filter_text="split:test gender:M"), matched=1)
    assert asked == []  # the clip selected has split test and gender M
    with pytest.raises(FilterError, match="did you mean test"):
        browse.check_filter(ws.conn, BrowseQuery(filter_text="-split:tset"), matched=4)
    assert asked == ["split"]
    with pytest.raises(FilterError, match="no clip has gender 'X'"):
        browse.check_filter(ws.conn, BrowseQuery(filter_text="gender:X"), matched=0)
    assert asked == ["split", "gender"]
