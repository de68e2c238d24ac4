"""The Registry type, and that every plug-in point really is one function or one file.

The second half registers a new strategy, metric, table format, subset format, corpus
format and backend inside the test itself and checks that the code which lists, validates
and computes them picks the newcomer up with nothing else edited. The `scratch` fixture
gives each test a copy of a real registry's entries, so what a test adds is gone after it.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ambiscope.core.registry import Registry, RegistryError
from tests.core.test_export_data import demo_db, demo_template  # noqa: F401


@pytest.fixture
def scratch(monkeypatch: pytest.MonkeyPatch) -> Callable[[Registry[Any]], Registry[Any]]:
    """Make a real registry's entries test-local: additions disappear after the test."""

    def use(registry: Registry[Any]) -> Registry[Any]:
        registry.names()  # discover first, so the copy holds every real entry
        monkeypatch.setattr(registry, "_entries", dict(registry._entries))
        monkeypatch.setattr(registry, "_meta", dict(registry._meta))
        return registry

    return use


@pytest.fixture
def plugin_package(tmp_path: Path) -> Iterator[str]:
    """A throw-away package `plugpkg` whose modules register into `plugpkg.REG`."""
    root = tmp_path / "plugpkg"
    root.mkdir()
    (root / "__init__.py").write_text(
        "from ambiscope.core.registry import Registry\n"
        "REG = Registry('thing', discover=('plugpkg',))\n"
    )
    (root / "alpha.py").write_text("from plugpkg import REG\nREG.add('alpha', 1, size=1)\n")
    (root / "beta.py").write_text(
        "from plugpkg import REG\n\n@REG.register('beta', size=2)\ndef beta():\n    return 2\n"
    )
    (root / "_hidden.py").write_text("from plugpkg import REG\nREG.add('hidden', 0)\n")
    (tmp_path / "lazy_target.py").write_text("VALUE = object()\n")
    sys.path.insert(0, str(tmp_path))
    yield "plugpkg"
    sys.path.remove(str(tmp_path))
    for name in [m for m in sys.modules if m.startswith(("plugpkg", "lazy_target"))]:
        del sys.modules[name]


# ------------------------------------------------------------------------- Registry itself
def test_entries_metadata_and_container_protocol() -> None:
    reg: Registry[int] = Registry("number")
    reg.add("one", 1, odd=True)

    @reg.register("two", odd=False)
    def two() -> int:
        return 2

    assert reg.names() == ("one", "two") and list(reg) == ["one", "two"] and len(reg) == 2
    assert reg.get("one") == 1 and reg["two"] is two and "one" in reg and "three" not in reg
    assert reg.meta("one") == {"odd": True} and dict(reg.items()) == {"one": 1, "two": two}
    with pytest.raises(TypeError):
        reg.meta("one")["odd"] = False  # type: ignore[index]


def test_duplicates_unknown_names_and_bad_lazy_references_are_refused() -> None:
    reg: Registry[int] = Registry("number")
    reg.add("one", 1)
    with pytest.raises(RegistryError, match="'one' is already registered"):
        reg.add("one", 11)
    assert reg.get("one") == 1  # the first registration stands
    with pytest.raises(RegistryError, match=r"unknown number 'nine' \(known: one\)"):
        reg.get("nine")
    with pytest.raises(RegistryError, match="unknown number"):
        reg.meta("nine")
    with pytest.raises(RegistryError, match="module:attr"):
        reg.add("lazy", "no_colon_here")
    with pytest.raises(RegistryError, match="non-empty"):
        reg.add("", 0)
    assert issubclass(RegistryError, ValueError)  # the CLI shows it as one line


def test_lazy_entries_import_on_first_use(plugin_package: str) -> None:
    reg: Registry[object] = Registry("lazy thing")
    reg.add("target", "lazy_target:VALUE", cheap=True)
    assert reg.names() == ("target",) and reg.meta("target") == {"cheap": True}
    assert "lazy_target" not in sys.modules  # listing and metadata import nothing
    value = reg.get("target")
    assert value is sys.modules["lazy_target"].VALUE and reg.get("target") is value


def test_discovery_imports_every_public_module_of_the_package(plugin_package: str) -> None:
    reg = __import__(plugin_package).REG
    assert f"{plugin_package}.alpha" not in sys.modules  # nothing until the registry is read
    assert reg.names() == ("alpha", "beta")  # `_hidden` is skipped
    assert reg.meta("beta") == {"size": 2} and reg.get("beta")() == 2


# --------------------------------------------------------------- one decorated function each
def test_a_new_strategy_is_one_decorated_function(scratch: Callable) -> None:
    from ambiscope.core.scaling.strategies import (
        STRATEGIES,
        CandidateSet,
        aggregate,
        applicable_strategies,
        scalable_strategies,
        strategy,
        strategy_rank,
    )

    scratch(STRATEGIES)

    @strategy("last", needs=("logprobs",), scalable=False)
    def last(cs: CandidateSet, *, skip: float = 0.0) -> np.ndarray | None:
        idx = np.flatnonzero(cs.valid)
        return cs.dists[idx[-1 - int(skip)]].copy() if idx.size else None

    assert STRATEGIES.names()[-1] == "last" and strategy_rank("last")[0] == len(STRATEGIES) - 1
    assert "last" in applicable_strategies("cot", True, False, False)
    assert "last" not in applicable_strategies("label", False, False, False)  # needs logprobs
    assert "last" not in scalable_strategies()
    cs = CandidateSet.from_labels([0, 2, 1], 3, logprob_norm=[-1.0, -2.0, -3.0])
    out = aggregate(cs, ["vote", "last"], skip=1.0)  # `skip` is routed to `last` only
    assert out["last"].tolist() == [0, 0, 1] and "last" in aggregate(cs)
    with pytest.raises(ValueError, match="unknown needs or modes"):
        strategy("bad", needs=("gpu",))


def test_a_new_metric_is_one_decorated_function_everywhere(scratch: Callable) -> None:
    from ambiscope.core.export.tables import TableOptions
    from ambiscope.core.metrics import METRICS
    from ambiscope.core.metrics.bootstrap import CohortMember, cohort_metrics, evaluate_cohort
    from ambiscope.core.metrics.resampling import bootstrap_ci, compute_all
    from ambiscope.core.metrics.spec import Clips, Stat, register_metric
    from ambiscope.core.metrics.table import metric_table

    scratch(METRICS)

    @register_metric("top_mass", title="Top", higher_is_better=True, level="clip")
    def top_mass(clips: Clips) -> np.ndarray:
        """Per clip: the model's probability of the human majority label."""
        return clips.Q[np.arange(clips.n), clips.P.argmax(axis=1)]

    def hit_share(clips: Clips) -> float:
        return float(top_mass(clips).sum() / clips.Q.max(axis=1).sum())

    register_metric(
        "hit_share",
        title="Hit share",
        higher_is_better=True,
        level="corpus",
        stats=(Stat("top", top_mass), Stat("qmax", lambda c: c.Q.max(axis=1))),
        from_sums=lambda sums: sums["top"] / sums["qmax"],
    )(hit_share)

    assert METRICS.names()[-2:] == ("top_mass", "hit_share")
    assert METRICS.meta("hit_share") == {
        "title": "Hit share",
        "higher_is_better": True,
        "level": "corpus",
    }
    rng = np.random.default_rng(3)
    P = rng.dirichlet(np.ones(4), size=120)
    Q = 0.5 * P + 0.5 * rng.dirichlet(np.ones(4), size=120)
    expected = float(Q[np.arange(120), P.argmax(axis=1)].mean())
    assert compute_all(P, Q)["top_mass"] == pytest.approx(expected, abs=1e-12)
    point, lo, hi = bootstrap_ci(P, Q, n_resamples=50)["hit_share"]
    assert lo <= point <= hi
    assert {"top_mass", "hit_share"} <= set(cohort_metrics())
    groups = rng.choice(np.array(["a", "b"]), size=120)
    cohort = evaluate_cohort(
        P, [CohortMember(Q)], groups, metrics=("top_mass", "hit_share"), bootstrap=40, seed=2
    )
    for row in metric_table(P, Q, groups, bootstrap=40, seed=2):
        mine = cohort.rows[(0, row["group"])]
        for key in ("top_mass", "top_mass_lo", "hit_share", "hit_share_hi"):
            assert mine[key] == pytest.approx(row[key], abs=1e-6), key
    assert TableOptions(metrics=("top_mass",)).metrics == ("top_mass",)


def test_new_table_and_subset_formats_are_one_decorated_function(
    scratch: Callable,
    demo_db: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    from ambiscope.core.export import SUBSET_FORMATS, TABLE_FORMATS
    from ambiscope.core.export._common import ExportError
    from ambiscope.core.export.subset import SubsetOptions, export_subset
    from ambiscope.core.export.tables import BenchmarkTable, TableOptions, render
    from ambiscope.db import Workspace

    scratch(TABLE_FORMATS)
    scratch(SUBSET_FORMATS)

    @TABLE_FORMATS.register("tsv", suffix=".tsv")
    def tsv(table: BenchmarkTable, provenance: dict[str, Any] | None = None) -> str:
        return "\t".join(table.columns) + "\n"

    @SUBSET_FORMATS.register("keys", audio=False)
    def keys(out: Path, records: list[dict[str, Any]], labels: Any, opts: Any) -> list[str]:
        (out / "keys.txt").write_text("\n".join(r["key"] for r in records) + "\n")
        return [f"{len(records)} keys"]

    table = BenchmarkTable(TableOptions(bootstrap=0), [])
    assert render(table, "tsv").startswith("dataset\trun\t")
    with pytest.raises(ExportError, match="one of table, csv, json, md, latex, tsv"):
        render(table, "xlsx")
    with Workspace.open(demo_db) as ws:
        result = export_subset(ws, tmp_path / "out", SubsetOptions(format="keys"))
    assert result.messages == [f"{result.exported} keys"] and result.exported > 0
    assert len((tmp_path / "out" / "keys.txt").read_text().split()) == result.exported
    provenance = json.loads((tmp_path / "out" / "provenance.json").read_text())
    assert provenance["counts"]["exported"] == result.exported
    with pytest.raises(ExportError, match=r"one of audiofolder, .*label-studio, keys, got 'xlsx'"):
        SubsetOptions(format="xlsx")


def test_a_new_corpus_format_is_one_decorated_reader(scratch: Callable, tmp_path: Path) -> None:
    from ambiscope.core.corpora import FORMATS, corpus_format, import_corpus
    from ambiscope.core.corpora.base import ImportOptions, ParsedCorpus, RawVote
    from ambiscope.db import ClipIn, Workspace

    scratch(FORMATS)

    @corpus_format("pairs", default_name=lambda path: path.stem, summary="key,label lines")
    def read(path: Path, options: ImportOptions) -> ParsedCorpus:
        parsed = ParsedCorpus("pairs", None, str(path.parent))
        for i, line in enumerate(path.read_text().splitlines()):
            key, label = line.split(",")
            parsed.clips.append(ClipIn(key))
            parsed.votes.append(RawVote(key, f"r{i}", label))
        return parsed

    assert "pairs" in FORMATS.names() and FORMATS.meta("pairs")["summary"] == "key,label lines"
    source = tmp_path / "tiny.csv"
    source.write_text("a,happy\nb,sad\n")
    with Workspace.open(tmp_path / "w.db", create=True) as ws:
        result = import_corpus(ws, "pairs", source, ImportOptions())
    assert result.dataset.name == "tiny" and result.dataset.format == "pairs"
    assert result.clips_total == 2 and result.votes_written == 2


def test_a_new_backend_is_one_registered_class(scratch: Callable) -> None:
    from ambiscope.core.alm import BACKENDS, create_backend, open_backend
    from ambiscope.core.scaling.run import RunSpec

    scratch(BACKENDS)

    @BACKENDS.register("echo")
    class Echo:
        def __init__(self, model_id: str, *, timeout: float = 1.0) -> None:
            self.model_id, self.timeout = model_id, timeout

    made = create_backend("echo", "m", {"timeout": 3.0, "device": "cuda"})  # takes its own
    assert isinstance(made, Echo) and made.timeout == 3.0
    opened = open_backend(RunSpec(dataset="d", model="m", backend="echo", timeout=7.0))
    assert isinstance(opened, Echo) and (opened.model_id, opened.timeout) == ("m", 7.0)
    with pytest.raises(ValueError, match="--backend must be one of"):
        RunSpec(dataset="d", model="m", backend="nope")
