"""Workspace statistics: what `ambiscope stats` prints and the demo summarises.

Agreement is reported per dataset and per split (DESIGN.md), because crowd pools and
rater counts usually differ between splits of the same corpus.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ambiscope.core.conventions import Conventions, resolve
from ambiscope.core.reference.human import (
    HumanData,
    agreement_from_counts,
    compute_human,
    human_options,
)
from ambiscope.db import Dataset, Workspace


def _rater_stats(n_votes: np.ndarray) -> dict[str, float]:
    voted = n_votes[n_votes > 0]
    if voted.size == 0:
        return {"mean": 0.0, "min": 0.0, "max": 0.0}
    return {
        "mean": round(float(voted.mean()), 2),
        "min": float(voted.min()),
        "max": float(voted.max()),
    }


def _primary_counts(ws: Workspace, ds: Dataset, clip_ids: np.ndarray) -> np.ndarray:
    """(n_clips, K) primary human vote weights aligned with `clip_ids`."""
    votes = ws.vote_arrays(ds.id, ("human",))
    keep = (votes.rank == 0) & (votes.label_idx >= 0)
    counts = np.zeros((len(clip_ids), ds.k))
    rows = np.searchsorted(clip_ids, votes.clip_id[keep])
    np.add.at(counts, (rows, votes.label_idx[keep]), votes.weight[keep])
    return counts


def _votes(weight: float) -> int | float:
    """A vote count: weighted votes (an anonymous crowd's "3 raters said sad") count by
    their weight, so a corpus stored as weighted rows reports raters' votes, not rows."""
    return int(weight) if float(weight).is_integer() else round(float(weight), 2)


def _clean(value: Any) -> Any:
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, 4)
    return value


def dataset_stats(
    ws: Workspace, ds: Dataset, conventions: Conventions | None = None
) -> dict[str, Any]:
    """Counts, rater numbers, label histograms, ambiguity and agreement for one dataset,
    under ``conventions`` (default: the workspace's; computed in memory, so another preset
    never rewrites the cache)."""
    conventions = conventions or resolve(ws.get_meta)
    options = human_options(conventions, ds)
    human: HumanData = compute_human(ws, ds, options)
    by_kind = ws.conn.execute(
        "SELECT a.kind, sum(v.weight), count(*) FROM votes v "
        "JOIN annotators a ON a.id = v.annotator_id JOIN clips c ON c.id = v.clip_id "
        "WHERE c.dataset_id = ? GROUP BY a.kind ORDER BY a.kind",
        (ds.id,),
    ).fetchall()
    with_audio = ws.conn.execute(
        "SELECT count(*) FROM clips WHERE dataset_id = ? AND path IS NOT NULL", (ds.id,)
    ).fetchone()[0]
    vote_hist = dict(
        ws.conn.execute(
            "SELECT v.label, sum(v.weight) FROM votes v JOIN clips c ON c.id = v.clip_id "
            "JOIN annotators a ON a.id = v.annotator_id "
            "WHERE c.dataset_id = ? AND a.kind = 'human' AND v.rank = 0 GROUP BY v.label",
            (ds.id,),
        ).fetchall()
    )
    majority = {label: int((human.majority == i).sum()) for i, label in enumerate(ds.label_set)}
    levels = {lvl: int((human.ambiguity == lvl).sum()) for lvl in ("low", "medium", "high")}
    splits: dict[str, Any] = {}
    split_of = np.array(
        [
            s
            for (s,) in ws.conn.execute(
                "SELECT coalesce(split, '') FROM clips WHERE dataset_id = ? ORDER BY id", (ds.id,)
            )
        ],
        dtype=object,
    )
    names = sorted(set(split_of.tolist()))
    counts = _primary_counts(ws, ds, human.clip_ids)
    single = options.kappa_single
    if names and names != [""]:
        for name in names:
            mask = split_of == name
            splits[name or "(none)"] = {
                "clips": int(mask.sum()),
                **{k: _clean(v) for k, v in agreement_from_counts(counts[mask], single).items()},
            }
    agreement = agreement_from_counts(counts[human.valid], single)
    # raw entropy in the conventions' base (bits, or nats as the official code prints it)
    scale = 1.0 if conventions.entropy_base == "2" else math.log(2.0)
    return {
        "dataset": ds.name,
        "format": ds.format,
        "labels": list(ds.label_set),
        "clips": int(human.clip_ids.size),
        "clips_with_audio": int(with_audio),
        "clips_with_votes": int(human.valid.sum()),
        "votes": _votes(sum(weight for _, weight, _ in by_kind)),
        "votes_by_kind": {kind: _votes(weight) for kind, weight, _ in by_kind},
        "vote_rows": sum(n for _, _, n in by_kind),
        "raters_per_clip": _rater_stats(human.n_votes),
        "vote_histogram": {lbl: float(vote_hist.get(lbl, 0.0)) for lbl in ds.label_set},
        "majority_histogram": majority,
        "ambiguity": levels,
        "ambiguity_cuts": human.cuts or {},
        "mean_norm_entropy": _clean(float(np.nanmean(human.norm_entropy)))
        if human.valid.any()
        else None,
        "mean_entropy": _clean(float(np.nanmean(human.entropy)) * scale)
        if human.valid.any()
        else None,
        "entropy_unit": "bits" if conventions.entropy_base == "2" else "nats",
        "agreement": {k: _clean(v) for k, v in agreement.items()},
        "agreement_by_split": splits,
    }


def workspace_stats(
    ws: Workspace, names: list[str] | None = None, conventions: Conventions | None = None
) -> dict[str, Any]:
    """Every (or the named) dataset's statistics under ``conventions`` (default: the
    workspace's, `ambiscope config preset`)."""
    conv = conventions or resolve(ws.get_meta)
    datasets = [ws.get_dataset(n) for n in names] if names else ws.datasets()
    return {
        "workspace": str(ws.path),
        "schema": ws.schema_version,
        "conventions": conv.to_dict(),
        "datasets": [dataset_stats(ws, ds, conv) for ds in datasets],
    }


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def format_dataset(stats: dict[str, Any]) -> str:
    """Human-readable block for one dataset."""
    lines = [f"dataset {stats['dataset']} ({stats['format']})"]
    lines.append(
        f"  clips: {stats['clips']} ({stats['clips_with_audio']} with audio, "
        f"{stats['clips_with_votes']} with votes)"
    )
    kinds = "; ".join(f"{k} {v:,}" for k, v in stats["votes_by_kind"].items()) or "none"
    lines.append(f"  votes: {stats['votes']:,} ({kinds}) in {stats['vote_rows']:,} vote rows")
    r = stats["raters_per_clip"]
    lines.append(f"  votes per clip: mean {r['mean']}, min {r['min']:g}, max {r['max']:g}")
    width = max(len(label) for label in stats["labels"])
    lines.append(f"  {'label':<{width}}  {'votes':>8}  {'majority':>8}")
    for label in stats["labels"]:
        lines.append(
            f"  {label:<{width}}  {stats['vote_histogram'][label]:>8g}"
            f"  {stats['majority_histogram'][label]:>8d}"
        )
    amb = stats["ambiguity"]
    cuts = stats["ambiguity_cuts"].get("cuts") or []
    cut_text = ", ".join(f"{c:.3f}" for c in cuts if c is not None and not math.isnan(c))
    lines.append(
        f"  ambiguity: low {amb['low']}, medium {amb['medium']}, high {amb['high']}"
        f" ({stats['ambiguity_cuts'].get('method', '?')} cuts on normalised entropy: {cut_text})"
    )
    if stats["mean_entropy"] is not None:
        lines.append(
            f"  entropy: mean {stats['mean_entropy']:.3f} {stats['entropy_unit']}, "
            f"normalised {stats['mean_norm_entropy']:.3f}"
        )
    ag = stats["agreement"]
    lines.append(
        f"  agreement: Fleiss' kappa {_fmt(ag.get('fleiss_kappa'))}, "
        f"Krippendorff's alpha {_fmt(ag.get('krippendorff_alpha'))}"
        + (f" ({ag['reason']})" if ag.get("reason") else "")
    )
    for split, sa in stats["agreement_by_split"].items():
        lines.append(
            f"    {split}: {sa['clips']} clips, kappa {_fmt(sa.get('fleiss_kappa'))}, "
            f"alpha {_fmt(sa.get('krippendorff_alpha'))}"
        )
    return "\n".join(lines)


def format_stats(result: dict[str, Any]) -> str:
    conv = result["conventions"]
    label = conv["preset"] + "".join(f", {k}={v}" for k, v in conv["overrides"].items())
    blocks = [f"workspace {result['workspace']} (schema {result['schema']})\nconventions: {label}"]
    if not result["datasets"]:
        blocks.append("no datasets yet: run `ambiscope demo` or `ambiscope import ...`")
    blocks += [format_dataset(s) for s in result["datasets"]]
    return "\n\n".join(blocks)
