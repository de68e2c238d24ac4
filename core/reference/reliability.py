"""Annotator reliability: Dawid-Skene and MACE fitted on a dataset's rater votes, stored
in the workspace and served as the references `human-ds` and `human-mace`.

Why: vote counting treats every rater alike. With sparse, uneven raters (Zhang et al.) a
careless or adversarial rater moves a clip's distribution as much as a careful one. Two
established latent-class models, as implemented by crowd-kit (the `reliability` extra),
estimate each rater's confusion and a posterior over each clip's label:

- Dawid-Skene (1979): a full K x K confusion matrix per rater. Reliability = the
  prior-weighted diagonal, the probability that the rater's label is the true one.
- MACE (Hovy et al. 2013): a rater knows the label with probability theta and otherwise
  answers from their own label distribution xi. Reliability = theta (competence);
  confusion = theta I + (1 - theta) 1 xi^T.

What is fitted: each rater's primary label per clip (rank 0), one vote whatever the stored
weight; secondary labels stay out (neither model has a place for them). Anonymous pooled
counts (CREMA-D's crowd, count manifests: an annotator id with several primary labels on
one clip, or a weight above 1) are not raters and are left out; a dataset with nothing
else is skipped with one line (`NoRaters`). The annotator kinds are the dataset's human
reference kinds (`dataset_options(ds).kinds`), whatever the TUI's own-vote toggle says.

Stored with every fit: the model settings (iterations, tolerance, seed, restarts, the
error floor / priors, the vote rule, the crowd-kit version) and the votes_version it saw.
A fit whose votes changed since is stale: the references refuse it with a one-line error
naming the refit command, and `reliability show` marks it, so no number is computed from
outdated votes. `reliability_record` is what provenance records.

`unreliable` (a filter term): the clips whose distribution changes most when reliability
is taken into account. shift = JS divergence (bits) between the clip's raw primary-vote
distribution and its Dawid-Skene posterior; a clip is unreliable when its shift is at
least the fit's `shift_cut` = max(90th percentile of the dataset's shifts,
UNRELIABLE_FLOOR): the top decile, but never clips whose distribution barely moved.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ambiscope.core.metrics.functions import js_divergence
from ambiscope.core.reference.distributions import entropy_bits, normalized_entropy
from ambiscope.core.reference.human import (
    HumanData,
    dataset_options,
    default_options,
    load_human,
)
from ambiscope.core.versions import package_versions
from ambiscope.db import Dataset, Run, Workspace, codec

MODELS: dict[str, str] = {"ds": "Dawid-Skene", "mace": "MACE"}
"""Fitted models: stored name -> what messages call it."""
RELIABILITY_MEANING = {
    "ds": "P(rater's label = true label), prior-weighted confusion diagonal",
    "mace": "MACE competence: P(rater knows the label rather than guessing)",
}
UNRELIABLE_QUANTILE = 0.9
UNRELIABLE_FLOOR = 0.05
"""`unreliable` = shift >= max(this quantile of the dataset's shifts, this floor, in bits)."""
DS_ERROR_FLOOR = 1e-10  # crowd-kit's DawidSkene clips confusion entries at this value


class NoRaters(ValueError):
    """A dataset without identifiable raters (anonymous pooled counts only): skipped."""


@dataclass(frozen=True)
class FitSettings:
    """How a model is fitted; stored with the fit (a convention: it changes the numbers).

    max_iter: EM iterations (DS: at most; MACE: exactly, crowd-kit has no stopping rule).
    tol: DS stops when the evidence lower bound per vote improves by less.
    seed: MACE's random initialisation (DS starts from the majority vote: no randomness).
    restarts: MACE restarts; crowd-kit re-seeds each with the same seed, so more than one
    repeats the same fit and 1 is the default.
    alpha, beta: MACE's Beta prior on competence (variational Bayes, crowd-kit's default).
    """

    max_iter: int = 50
    tol: float = 1e-5
    seed: int = 0
    restarts: int = 1
    alpha: float = 0.5
    beta: float = 0.5

    def __post_init__(self) -> None:
        if self.max_iter < 1:
            raise ValueError(f"--max-iter must be >= 1, got {self.max_iter}")
        if self.restarts < 1:
            raise ValueError(f"restarts must be >= 1, got {self.restarts}")

    def record(self, model: str, kinds: Sequence[str], pooled: Sequence[str]) -> dict[str, Any]:
        """The settings as stored: only what `model` uses, plus the vote rule."""
        common = {
            "model": model,
            "library": f"crowd-kit {package_versions(('crowd-kit',)).get('crowd-kit')}",
            "max_iter": self.max_iter,
            "votes": "primary label per rater and clip, one vote each (weights ignored)",
            "kinds": list(kinds),
            "pooled_left_out": list(pooled),
        }
        if model == "ds":
            return {
                **common,
                "tol": self.tol,
                "init": "majority vote",
                "error_floor": DS_ERROR_FLOOR,
            }
        return {
            **common,
            "seed": self.seed,
            "restarts": self.restarts,
            "method": "vb",
            "alpha": self.alpha,
            "beta": self.beta,
        }


# ---------------------------------------------------------------------- the votes
@dataclass(frozen=True, eq=False)
class RaterVotes:
    """One primary label per (clip, rater): the data both models see."""

    clip_id: np.ndarray
    rater: np.ndarray  # annotator id
    label: np.ndarray  # index into the dataset's label set
    pooled: tuple[str, ...]  # external ids of pooled (anonymous) annotators left out
    kinds: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.clip_id.shape[0])


def _pooled_ids(clip: np.ndarray, rater: np.ndarray, weight: np.ndarray) -> set[int]:
    """Annotators that are anonymous crowds: several primary labels on one clip, or a
    weight above 1 (a count of people, CREMA-D's `crowd-voice`)."""
    pairs = np.stack([clip, rater], axis=1)
    _, first, counts = np.unique(pairs, axis=0, return_index=True, return_counts=True)
    pooled = set(rater[first[counts > 1]].tolist()) if len(pairs) else set()
    return pooled | set(rater[weight > 1].tolist())


def rater_votes(ws: Workspace, ds: Dataset) -> RaterVotes:
    """The dataset's rater votes (module docstring); NoRaters when there are none."""
    kinds = dataset_options(ds).kinds
    votes = ws.vote_arrays(ds.id, kinds)
    keep = (votes.rank == 0) & (votes.label_idx >= 0)
    clip, rater, label = votes.clip_id[keep], votes.annotator_id[keep], votes.label_idx[keep]
    pooled = _pooled_ids(clip, rater, votes.weight[keep])
    names = {a.id: a.external_id for a in ws.annotators(ds.id)}
    pooled_names = tuple(sorted(names[i] for i in pooled))
    rated = ~np.isin(rater, np.fromiter(pooled, dtype=np.int64, count=len(pooled)))
    if not rated.any():
        why = (
            f"its votes are anonymous pooled counts ({', '.join(pooled_names)}), no rater ids"
            if pooled_names
            else f"it has no {'/'.join(kinds)} votes"
        )
        raise NoRaters(f"dataset {ds.name!r}: reliability skipped: {why}")
    order = np.lexsort((rater[rated], clip[rated]))
    return RaterVotes(
        clip[rated][order], rater[rated][order], label[rated][order], pooled_names, kinds
    )


def vote_distribution(rv: RaterVotes, clip_ids: np.ndarray, k: int) -> np.ndarray:
    """(n, K) raw primary-vote distributions of `clip_ids` (sorted) from these votes."""
    counts = np.zeros((len(clip_ids), k))
    np.add.at(counts, (np.searchsorted(clip_ids, rv.clip_id), rv.label), 1.0)
    return counts / counts.sum(axis=1, keepdims=True)


def rater_agreement(rv: RaterVotes, k: int) -> dict[int, tuple[int, float | None]]:
    """annotator id -> (votes, agreement with the rest).

    Agreement = the share of a rater's votes that equal the leave-one-out majority: the
    most voted label among the OTHER raters of the clip (a tie counts when the rater's
    label is among the tied). Clips nobody else rated do not count; None when none is left.
    """
    clip_ids, clip_idx = np.unique(rv.clip_id, return_inverse=True)
    counts = np.zeros((len(clip_ids), k))
    np.add.at(counts, (clip_idx, rv.label), 1.0)
    others = counts[clip_idx]
    others[np.arange(len(rv)), rv.label] -= 1.0
    top = others.max(axis=1)
    compared = top > 0
    agrees = compared & (others[np.arange(len(rv)), rv.label] == top)
    raters, idx = np.unique(rv.rater, return_inverse=True)
    n = np.bincount(idx)
    n_compared = np.bincount(idx, weights=compared)
    n_agree = np.bincount(idx, weights=agrees)
    return {
        int(r): (int(n[i]), float(n_agree[i] / n_compared[i]) if n_compared[i] else None)
        for i, r in enumerate(raters)
    }


# ------------------------------------------------------------------------ fitting
@dataclass(frozen=True, eq=False)
class Fit:
    """A fitted model in memory: posteriors over `clip_ids`, one row per rater."""

    model: str
    clip_ids: np.ndarray
    posterior: np.ndarray  # (n, K)
    shift: np.ndarray  # JS(raw votes, posterior) per clip, bits
    raters: np.ndarray  # annotator ids
    n_votes: np.ndarray
    reliability: np.ndarray
    confusion: np.ndarray  # (raters, K, K): row = true label, column = label given
    settings: dict[str, Any]
    summary: dict[str, Any]

    @property
    def shift_cut(self) -> float:
        if not len(self.shift):
            return UNRELIABLE_FLOOR
        return max(float(np.quantile(self.shift, UNRELIABLE_QUANTILE)), UNRELIABLE_FLOOR)


def _fit_ds(rv: RaterVotes, k: int, settings: FitSettings) -> dict[str, Any]:
    import pandas as pd
    from crowdkit.aggregation import DawidSkene

    frame = pd.DataFrame({"task": rv.clip_id, "worker": rv.rater, "label": rv.label})
    model = DawidSkene(n_iter=settings.max_iter, tol=settings.tol).fit(frame)
    raters = np.unique(rv.rater)
    confusion = np.zeros((len(raters), k, k))
    at = {int(r): i for i, r in enumerate(raters)}
    errors = model.errors_  # index (worker, label given), columns true label
    for (worker, given), row in errors.iterrows():
        for true, p in row.items():
            confusion[at[int(worker)], int(true), int(given)] = p
    prior = np.zeros(k)
    prior[model.priors_.index.to_numpy(dtype=np.int64)] = model.priors_.to_numpy()
    reliability = np.einsum("c,rcc->r", prior, confusion)
    iterations = len(model.loss_history_)
    return {
        "probas": model.probas_,
        "raters": raters,
        "confusion": confusion,
        "reliability": reliability,
        "summary": {
            "prior": prior.round(6).tolist(),
            "iterations": iterations,
            "converged": iterations < settings.max_iter,
        },
    }


def _fit_mace(rv: RaterVotes, k: int, settings: FitSettings) -> dict[str, Any]:
    import pandas as pd
    from crowdkit.aggregation import MACE

    # crowd-kit 1.4.2's MACE indexes its parameters by first appearance in the E-step but
    # by sorted value after its M-step; codes numbered by first appearance make both
    # orders the same (tasks are already sorted by clip id)
    workers, worker_ids = pd.factorize(rv.rater)
    labels, label_ids = pd.factorize(rv.label)
    frame = pd.DataFrame({"task": rv.clip_id, "worker": workers, "label": labels})
    model = MACE(
        n_restarts=settings.restarts,
        n_iter=settings.max_iter,
        method="vb",
        alpha=settings.alpha,
        beta=settings.beta,
        random_state=settings.seed,
    ).fit(frame)
    order = np.argsort(worker_ids)
    knows = model.spamming_ / model.spamming_.sum(axis=1, keepdims=True)  # VB: sub-normalised
    competence = knows[order, 1]
    xi = np.zeros((len(worker_ids), k))
    xi[:, label_ids] = model.thetas_ / model.thetas_.sum(axis=1, keepdims=True)
    xi = xi[order]
    eye = np.eye(k)[None]
    confusion = competence[:, None, None] * eye + (1 - competence)[:, None, None] * xi[:, None, :]
    probas = model.probas_.rename(columns=dict(enumerate(label_ids.tolist())))
    return {
        "probas": probas,
        "raters": np.asarray(worker_ids, dtype=np.int64)[order],
        "confusion": confusion,
        "reliability": competence,
        "summary": {"prior": "uniform over the labels used", "iterations": settings.max_iter},
    }


_FITTERS = {"ds": _fit_ds, "mace": _fit_mace}


def _posterior(probas: Any, clip_ids: np.ndarray, k: int) -> np.ndarray:
    """crowd-kit's task x label frame as (n, K) rows in `clip_ids` order."""
    out = np.zeros((len(clip_ids), k))
    frame = probas.reindex(index=clip_ids).fillna(0.0)
    out[:, frame.columns.to_numpy(dtype=np.int64)] = frame.to_numpy(dtype=np.float64)
    return out / out.sum(axis=1, keepdims=True)


def fit_model(rv: RaterVotes, k: int, model: str, settings: FitSettings | None = None) -> Fit:
    """Fit `model` ("ds" or "mace") on the rater votes, in memory (needs crowd-kit)."""
    if model not in MODELS:
        raise ValueError(f"--model must be one of {', '.join(MODELS)}, all; got {model!r}")
    settings = settings or FitSettings()
    try:
        with warnings.catch_warnings():  # crowd-kit 1.4.2 uses pandas' deprecated inplace=
            warnings.filterwarnings("ignore", module="crowdkit")
            fitted = _FITTERS[model](rv, k, settings)
    except ImportError:
        raise ValueError(
            "reliability models need crowd-kit: pip install 'ambiscope[reliability]'"
        ) from None
    clip_ids = np.unique(rv.clip_id)
    posterior = _posterior(fitted["probas"], clip_ids, k)
    agreement = rater_agreement(rv, k)
    return Fit(
        model=model,
        clip_ids=clip_ids,
        posterior=posterior,
        shift=js_divergence(vote_distribution(rv, clip_ids, k), posterior),
        raters=fitted["raters"],
        n_votes=np.array([agreement[int(r)][0] for r in fitted["raters"]], dtype=np.int64),
        reliability=fitted["reliability"],
        confusion=fitted["confusion"],
        settings=settings.record(model, rv.kinds, rv.pooled),
        summary={**fitted["summary"], "raters": len(fitted["raters"]), "clips": len(clip_ids)},
    )


def store_fit(ws: Workspace, ds: Dataset, fit: Fit, votes_version: int) -> int:
    """Replace the dataset's stored fit of `fit.model` (one transaction); the fit id."""
    blobs = codec.encode_many(fit.posterior)
    return ws.write_reliability_fit(
        ds.id,
        fit.model,
        settings=fit.settings,
        votes_version=votes_version,
        summary=fit.summary,
        shift_cut=fit.shift_cut,
        raters=(
            (int(r), int(n), float(rel), codec.encode_dist(c.ravel()))
            for r, n, rel, c in zip(
                fit.raters, fit.n_votes, fit.reliability, fit.confusion, strict=True
            )
        ),
        posteriors=((int(c), blobs[i], float(fit.shift[i])) for i, c in enumerate(fit.clip_ids)),
    )


def fit_dataset(
    ws: Workspace,
    dataset: Dataset | str | int,
    models: Sequence[str] = ("ds", "mace"),
    settings: FitSettings | None = None,
) -> list[Fit]:
    """Fit and store each model on a dataset's current votes (NoRaters: nothing stored)."""
    ds = ws.get_dataset(dataset.id if isinstance(dataset, Dataset) else dataset)
    rv = rater_votes(ws, ds)
    fits = [fit_model(rv, ds.k, model, settings) for model in models]
    for fit in fits:
        store_fit(ws, ds, fit, ds.votes_version)
    return fits


# ------------------------------------------------------------------------ reading
def fit_state(ws: Workspace, ds: Dataset, model: str) -> tuple[dict[str, Any] | None, bool]:
    """(stored fit or None, whether it is stale: the votes changed since it was fitted)."""
    fit = ws.reliability_fit(ds.id, model)
    if fit is None:
        return None, False
    return fit, fit["votes_version"] != ws.get_dataset(ds.id).votes_version


def current_fit(ws: Workspace, ds: Dataset, model: str) -> dict[str, Any]:
    """The dataset's stored, up-to-date fit of `model`; one-line ValueError otherwise."""
    fit, stale = fit_state(ws, ds, model)
    refit = f"run `ambiscope reliability fit -d {ds.name} --model {model}`"
    if fit is None:
        raise ValueError(f"human-{model}: no {MODELS[model]} fit on dataset {ds.name!r}: {refit}")
    if stale:
        raise ValueError(
            f"human-{model}: the {MODELS[model]} fit on dataset {ds.name!r} is stale (votes "
            f"changed since {fit['fitted_at']}): {refit}"
        )
    return fit


def reliability_record(ws: Workspace, ds: Dataset) -> dict[str, Any]:
    """model -> {settings, votes_version, fitted_at, stale} of the dataset's stored fits:
    what provenance records next to a number computed against human-ds / human-mace."""
    out: dict[str, Any] = {}
    for model in MODELS:
        fit, stale = fit_state(ws, ds, model)
        if fit is not None:
            keep = ("settings", "votes_version", "fitted_at", "summary", "shift_cut")
            out[model] = {**{key: fit[key] for key in keep}, "stale": stale}
    return out


def read_posteriors(
    ws: Workspace, ds: Dataset, model: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(clip ids, (n, K) posteriors, shifts) of the current fit (stale: ValueError)."""
    rows = ws.reliability_posteriors(current_fit(ws, ds, model)["id"])
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    dist = codec.decode_many((r[1] for r in rows), ds.k)
    dist /= dist.sum(axis=1, keepdims=True)  # undo float32 rounding
    shift = np.fromiter((r[2] for r in rows), dtype=np.float64, count=len(rows))
    return ids, dist, shift


@dataclass(frozen=True)
class RaterRow:
    """One rater as `reliability show` and the TUI's annotators screen list them."""

    annotator_id: int
    external_id: str
    kind: str
    n_votes: int
    agreement: float | None
    reliability: dict[str, float]  # model -> reliability (models with a fit)
    confusion: dict[str, np.ndarray]  # model -> (K, K)


@dataclass(frozen=True)
class RaterReport:
    """A dataset's raters with the stored fits' numbers (or why there are none)."""

    dataset: Dataset
    rows: list[RaterRow]
    fits: dict[str, dict[str, Any]]  # model -> stored fit (+ "stale")
    pooled: tuple[str, ...]
    skipped: str | None = None  # NoRaters message


def rater_report(ws: Workspace, dataset: Dataset | str | int) -> RaterReport:
    """Raters of a dataset by vote count: votes and agreement from the current votes,
    reliability and confusion from the stored fits (marked stale when votes changed)."""
    ds = ws.get_dataset(dataset.id if isinstance(dataset, Dataset) else dataset)
    try:
        rv = rater_votes(ws, ds)
    except NoRaters as exc:
        return RaterReport(ds, [], {}, (), skipped=str(exc))
    fits: dict[str, dict[str, Any]] = {}
    rel: dict[str, dict[int, tuple[float, np.ndarray]]] = {}
    for model in MODELS:
        fit, stale = fit_state(ws, ds, model)
        if fit is None:
            continue
        fits[model] = {**fit, "stale": stale}
        rel[model] = {
            int(a): (float(r), codec.decode_dist(c).reshape(ds.k, ds.k))  # type: ignore[union-attr]
            for a, _, r, c in ws.reliability_raters(fit["id"])
        }
    annotators = {a.id: a for a in ws.annotators(ds.id)}
    rows = [
        RaterRow(
            annotator_id=a,
            external_id=annotators[a].external_id,
            kind=annotators[a].kind,
            n_votes=n,
            agreement=agree,
            reliability={m: v[a][0] for m, v in rel.items() if a in v},
            confusion={m: v[a][1] for m, v in rel.items() if a in v},
        )
        for a, (n, agree) in rater_agreement(rv, ds.k).items()
    ]
    rows.sort(key=lambda r: (-r.n_votes, r.external_id))
    return RaterReport(ds, rows, fits, rv.pooled)


# ----------------------------------------------------------------------- reference
@dataclass(frozen=True)
class ReliabilityReference:
    """`human-ds` / `human-mace`: the stored posterior of a reliability model per clip.

    Read-only (safe inside an export's snapshot); a missing or stale fit is a one-line
    ValueError naming the refit command. Ambiguity levels stay the human reference's, as
    for every reference; entropy and majority are the posterior's; `human_kinds` (the
    TUI's own-vote toggle) does not apply: the fit pooled the dataset's own kinds.
    """

    name: str
    model: str
    is_human = False

    def distributions(
        self,
        ws: Workspace,
        ds: Dataset,
        *,
        run: int | Run | None = None,
        human_kinds: Sequence[str] | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(clip ids, (n, K) posteriors, valid) over every clip of the dataset by id."""
        from ambiscope.core.reference.human import dataset_clip_ids
        from ambiscope.core.reference.pooled import rows_of

        ids, dist, _ = read_posteriors(ws, ds, self.model)
        clip_ids = dataset_clip_ids(ws, ds)
        rows = rows_of(ids, clip_ids)
        out = np.full((len(clip_ids), ds.k), np.nan)
        out[rows >= 0] = dist[rows[rows >= 0]]
        return clip_ids, out, rows >= 0

    def counts(self, *_: Any, **__: Any) -> tuple[np.ndarray, np.ndarray]:
        raise ValueError(f"{self.name} is a model posterior, not vote counts")

    def load(
        self,
        ws: Workspace,
        ds: Dataset,
        *,
        human: HumanData | None = None,
        run: int | Run | None = None,
        human_kinds: Sequence[str] | None = None,
    ) -> HumanData:
        """A HumanData whose distributions are the posteriors, aligned with `human`."""
        from ambiscope.core.reference.pooled import rows_of

        human = human if human is not None else load_human(ws, ds)
        ids, dist, _ = read_posteriors(ws, ds, self.model)
        rows = rows_of(ids, human.clip_ids)
        found = rows >= 0
        aligned = np.full((len(human.clip_ids), ds.k), np.nan)
        aligned[found] = dist[rows[found]]
        clean = np.nan_to_num(aligned)
        norm = default_options(ws, ds).entropy_norm
        return HumanData(
            dataset=human.dataset,
            clip_ids=human.clip_ids,
            dist=aligned,
            valid=found,
            n_votes=np.where(found, human.n_votes, 0.0),
            entropy=np.where(found, entropy_bits(clean), np.nan),
            norm_entropy=np.where(found, normalized_entropy(clean, norm), np.nan),  # type: ignore[arg-type]
            ambiguity=human.ambiguity,
            majority=np.where(found, clean.argmax(axis=1), -1),
        )


HUMAN_DS = ReliabilityReference("human-ds", "ds")
HUMAN_MACE = ReliabilityReference("human-mace", "mace")


# ----------------------------------------------------------------------- listing
def _num(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def fit_line(model: str, fit: dict[str, Any]) -> str:
    """One line about a stored fit: when, on what, and whether it is stale."""
    summary = fit["summary"]
    state = "STALE (votes changed since; refit)" if fit.get("stale") else "current"
    return (
        f"{MODELS[model]}: {summary.get('clips', '?')} clips, {summary.get('raters', '?')} "
        f"raters, {summary.get('iterations', '?')} iterations, fitted {fit['fitted_at'][:19]}"
        f" · {state}"
    )


def format_report(report: RaterReport, confusion: str | None = None) -> str:
    """`reliability show`'s text: fits, then one line per rater (and its confusion rows
    under the `confusion` model, row = true label, when asked)."""
    ds = report.dataset
    if report.skipped:
        return report.skipped
    lines = [f"{ds.name}: {len(report.rows)} raters"]
    if report.pooled:
        lines[0] += f" (pooled counts left out: {', '.join(report.pooled)})"
    lines += [f"  {fit_line(m, f)}" for m, f in report.fits.items()]
    if not report.fits:
        lines.append(f"  no fit yet: ambiscope reliability fit -d {ds.name}")
    models = list(report.fits)
    head = f"  {'rater':<16} {'kind':<6} {'votes':>6} {'agree':>6}"
    head += "".join(f" {'rel ' + m:>9}" for m in models)
    lines.append(head)
    for row in report.rows:
        line = f"  {row.external_id[:16]:<16} {row.kind:<6} {row.n_votes:>6} "
        line += f"{_num(row.agreement):>6}"
        line += "".join(f" {_num(row.reliability.get(m)):>9}" for m in models)
        lines.append(line)
        if confusion in row.confusion:
            lines += confusion_rows(row.confusion[confusion], ds.label_set, indent=4)
    return "\n".join(lines)


def confusion_rows(matrix: np.ndarray, labels: Sequence[str], indent: int = 0) -> list[str]:
    """A confusion matrix as text rows: `true label | P(given label)` per column."""
    pad = " " * indent
    head = f"{pad}{'true/gave':<11}" + "".join(f" {lb[:5]:>5}" for lb in labels)
    rows = [
        f"{pad}{lb[:11]:<11}" + "".join(f" {p:>5.2f}" for p in matrix[i])
        for i, lb in enumerate(labels)
    ]
    return [head, *rows]


def report_json(report: RaterReport) -> dict[str, Any]:
    """`reliability show --json`: the same numbers, confusions as nested lists."""
    return {
        "dataset": report.dataset.name,
        "skipped": report.skipped,
        "pooled_left_out": list(report.pooled),
        "labels": list(report.dataset.label_set),
        "fits": {m: {k: v for k, v in f.items() if k != "id"} for m, f in report.fits.items()},
        "reliability_meaning": {m: RELIABILITY_MEANING[m] for m in report.fits},
        "raters": [
            {
                "rater": r.external_id,
                "kind": r.kind,
                "votes": r.n_votes,
                "agreement": r.agreement,
                "reliability": r.reliability,
                "confusion": {m: c.round(6).tolist() for m, c in r.confusion.items()},
            }
            for r in report.rows
        ],
    }
