"""The conventions object and the human-reference conventions, on hand-worked cases.

Each case is small enough to compute on paper; the expected values are written out, not
recomputed with the code under test.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from ambiscope.core.conventions import (
    META_KEY,
    PRESETS,
    Conventions,
    preset,
    resolve,
    write_default,
)
from ambiscope.core.reference.distributions import (
    DistributionOptions,
    ambiguity_levels,
    fleiss_kappa,
    normalized_entropy,
    vote_counts,
)
from ambiscope.tui.cli.main import main


# ------------------------------------------------------------------ the object
def test_presets_are_registered_and_differ_where_the_official_code_does() -> None:
    assert {"ambiscope", "scaling-ambiguity"} <= set(PRESETS.names())
    ours, theirs = preset("ambiscope"), preset("scaling-ambiguity")
    assert ours == Conventions()
    assert (theirs.ambiguity, theirs.entropy_norm, theirs.kappa_single) == (
        "rank-thirds",
        "log-present",
        "perfect",
    )
    assert theirs.to_dict()["preset"] == "scaling-ambiguity"
    assert set(theirs.to_dict()) >= set(Conventions.field_names())


def test_overrides_are_parsed_typed_named_and_checked() -> None:
    conv = preset("scaling-ambiguity").with_overrides(
        {"ambiguity": "tertile", "ece-n-bins": "15", "rater_transcript": "no"}
    )
    assert (conv.ambiguity, conv.ece_n_bins, conv.rater_transcript) == ("tertile", 15, False)
    assert conv.label() == (
        "scaling-ambiguity + ambiguity=tertile, ece_n_bins=15, rater_transcript=no"
    )
    with pytest.raises(ValueError, match="--set colour: no such convention"):
        conv.with_overrides({"colour": "red"})
    with pytest.raises(ValueError, match="ambiguity must be one of tertile, rank-thirds, fixed"):
        conv.with_overrides({"ambiguity": "quartiles"})
    with pytest.raises(ValueError, match="expected int"):
        conv.with_overrides({"ece_n_bins": "ten"})


def test_a_workspace_default_is_stored_and_a_named_preset_wins() -> None:
    meta: dict[str, str] = {}
    assert resolve(meta.get) == preset("ambiscope")
    write_default(meta.__setitem__, preset("scaling-ambiguity").with_overrides({"dime_k": "7"}))
    assert json.loads(meta[META_KEY]) == {"preset": "scaling-ambiguity", "set": {"dime_k": "7"}}
    assert resolve(meta.get).dime_k == 7
    assert resolve(meta.get, "ambiscope") == preset("ambiscope")  # default's overrides dropped
    assert resolve(meta.get, None, {"dime_k": "2"}).dime_k == 2


# --------------------------------------------------------------- entropy and levels
def test_a_50_50_two_label_clip_is_maximal_over_present_labels_not_over_k() -> None:
    half = np.array([[0.5, 0.5, 0, 0, 0, 0]])
    assert normalized_entropy(half, "log-present")[0] == pytest.approx(1.0)
    assert normalized_entropy(half, "log-k")[0] == pytest.approx(1 / math.log2(6))
    one = np.array([[1.0, 0, 0, 0, 0, 0]])
    assert normalized_entropy(one, "log-present")[0] == 0.0
    # 2:1:1 over three present labels: H = 1.5 bits, / log2(3)
    mixed = np.array([[0.5, 0.25, 0.25, 0, 0, 0]])
    assert normalized_entropy(mixed, "log-present")[0] == pytest.approx(1.5 / math.log2(3))


def test_rank_thirds_cut_exact_thirds_in_file_order_on_ties() -> None:
    # seven clips; clip 6 has no votes. Stable order by value: 1, 3 (0.0), 0, 5 (0.4),
    # 2, 4 (1.0): n = 6 -> two low, two medium, two high; ties keep clip order.
    h = np.array([0.4, 0.0, 1.0, 0.0, 1.0, 0.4, np.nan])
    result = ambiguity_levels(h, method="rank-thirds")
    assert result.codes.tolist() == [1, 0, 2, 0, 2, 1, -1]
    assert result.counts == (2, 2, 2) and result.cuts == (0.0, 0.4)
    # ties across a cut: four clips at 0.0 and n = 6 -> the first two are low, the next two
    # medium; the tertile rule puts all four low (q1 = 0) and, with q2 = 0 + 1/3 * 0.5,
    # both others high
    tied = np.array([0.0, 0.0, 0.0, 0.0, 0.5, 0.9])
    assert ambiguity_levels(tied, method="rank-thirds").codes.tolist() == [0, 0, 1, 1, 2, 2]
    assert ambiguity_levels(tied, method="tertile").codes.tolist() == [0, 0, 0, 0, 2, 2]
    # 7442 clips (CREMA-D's size) -> 2480 / 2480 / 2482
    many = ambiguity_levels(np.linspace(0, 1, 7442), method="rank-thirds")
    assert many.counts == (2480, 2480, 2482)


def test_a_50_50_clip_is_high_under_rank_thirds_over_present_labels() -> None:
    # three unanimous clips, two 2:1 splits of three raters, one 50/50 split
    dists = np.array(
        [
            [1, 0, 0, 0],
            [1, 0, 0, 0],
            [0, 1, 0, 0],
            [2 / 3, 1 / 3, 0, 0],
            [0, 2 / 3, 1 / 3, 0],
            [0.5, 0.5, 0, 0],
        ]
    )
    levels = ambiguity_levels(normalized_entropy(dists, "log-present"), method="rank-thirds")
    assert levels.codes.tolist() == [0, 0, 1, 1, 2, 2]
    assert levels.codes[5] == 2  # the 50/50 clip: normalised entropy 1.0, the maximum


# ----------------------------------------------------------------- label lists
def test_an_evaluators_label_list_counts_by_the_multi_label_rule() -> None:
    # clip 0: evaluator 7 wrote "Frustration; Anger" (frustration outside a 4-class set:
    # label -1), evaluator 8 wrote "Neutral"; labels: 0 neutral, 1 happy, 2 sad, 3 angry
    clip = np.array([0, 0, 0])
    label = np.array([-1, 3, 0])
    weight = np.ones(3)
    rank = np.array([0, 1, 0])
    who = np.array([7, 7, 8])

    def counts(rule: str) -> list[float]:
        opts = DistributionOptions(multi_label=rule)  # type: ignore[arg-type]
        return vote_counts(clip, label, weight, rank, 1, 4, opts, annotator=who)[0].tolist()

    assert counts("primary") == [1.0, 0.0, 0.0, 0.0]  # anger is rank 1: weight 0
    assert counts("split") == [1.0, 0.0, 0.0, 0.5]  # evaluator 7's voice split in two
    assert counts("each") == [1.0, 0.0, 0.0, 1.0]
    with pytest.raises(ValueError, match="needs the annotator"):
        vote_counts(clip, label, weight, rank, 1, 4, DistributionOptions(multi_label="split"))


# ---------------------------------------------------------------------- kappa
def test_single_rater_items_are_dropped_or_perfect_agreement() -> None:
    # item 0: two raters agree; item 1: two raters disagree; item 2: one rater
    counts = np.array([[2, 0], [1, 1], [0, 1]])
    # drop: P = (1 + 0) / 2 = 0.5; p = (3/4, 1/4) -> Pe = 10/16; kappa = (0.5 - 0.625)/0.375
    assert fleiss_kappa(counts) == pytest.approx(-1 / 3)
    # perfect: P = (1 + 0 + 1) / 3; p = (3/5, 2/5) -> Pe = 13/25
    expected = (2 / 3 - 13 / 25) / (1 - 13 / 25)
    assert fleiss_kappa(counts, "perfect") == pytest.approx(expected)
    assert fleiss_kappa(np.array([[1, 0], [0, 1]]), "perfect") == 1.0  # <= 1 rating each
    assert fleiss_kappa(np.array([[2, 0], [3, 0]]), "perfect") == 1.0  # one category, agree


# ------------------------------------------------------------------------ CLI
def _cli(db: Path, *args: str):
    return CliRunner().invoke(main, ["--db", str(db), *args])


def test_config_preset_makes_stats_use_the_official_levels(tmp_path: Path) -> None:
    from ambiscope.core.demo import DemoSpec, build_demo

    db = tmp_path / "ws.db"
    build_demo(db, DemoSpec(n_clips=30, seed=4))
    out = _cli(db, "stats", "--json")
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert data["conventions"]["preset"] == "ambiscope"
    assert data["datasets"][0]["ambiguity_cuts"]["method"] == "tertile"

    assert _cli(db, "config", "preset", "scaling-ambiguity").exit_code == 0
    data = json.loads(_cli(db, "stats", "--json").output)
    stats = data["datasets"][0]
    assert data["conventions"]["preset"] == "scaling-ambiguity"
    assert stats["ambiguity"] == {"low": 10, "medium": 10, "high": 10}
    assert stats["entropy_unit"] == "nats"
    text = _cli(db, "stats", "--preset", "ambiscope", "--set", "ambiguity=rank-thirds").output
    assert "conventions: ambiscope, ambiguity=rank-thirds" in text
    assert "low 10, medium 10, high 10 (rank-thirds" in text
    shown = _cli(db, "config", "show").output
    assert "conventions: scaling-ambiguity" in shown and "ambiguity = rank-thirds" in shown

    bad = _cli(db, "stats", "--set", "ambiguity=quartiles")  # a usage error: exit 2
    errors = [line for line in bad.output.splitlines() if line.startswith("Error:")]
    assert bad.exit_code == 2 and len(errors) == 1 and "ambiguity must be one of" in errors[0]
    missing = _cli(db, "stats", "--set", "ambiguity")
    assert missing.exit_code == 2 and "NAME=VALUE" in missing.output
