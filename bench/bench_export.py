"""Benchmark the exports at corpus scale.

Targets (2 CPU cores):
- `metrics` (compute_benchmark + render) for 150,000 clips x 3 runs x 9 strategies with
  1000 bootstrap resamples, by ambiguity level: <= 30 s.
- `export subset` of 10,000 clips as audiofolder with symlinks: <= 10 s.

The workspaces are synthetic and built once with bulk writes (no model, no audio for the
metrics one; 10k tiny WAV files for the subset one) in --workdir, which can be kept and
reused (`--workdir DIR`); building is not timed.

Run: ``.venv/bin/python bench/bench_export.py [--clips N] [--resamples B] [--workdir DIR]``.
Prints readable lines, then one JSON line with every number.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from benchlib import peak_rss_mb

from ambiscope.core.audio import write_wav
from ambiscope.core.export.subset import SubsetOptions, export_subset
from ambiscope.core.export.tables import TableOptions, compute_benchmark, render
from ambiscope.core.reference.human import refresh_human
from ambiscope.core.scaling.strategies import STRATEGIES
from ambiscope.db import ClipIn, RunIn, Workspace, codec

TARGETS = {"metrics_s": 30.0, "subset_s": 10.0}
LABELS = ("neutral", "happy", "sad", "angry", "fear", "disgust", "contempt", "surprise", "other")


def _votes(ws: Workspace, ds_id: int, n: int, rng: np.random.Generator) -> None:
    """5-9 simulated raters per clip drawing from a per-clip distribution."""
    k = len(LABELS)
    ids = np.array(sorted(ws.clip_ids(ds_id).values()), dtype=np.int64)
    raters = ws.ensure_annotators(ds_id, [(f"r{i}", "human") for i in range(9)])
    rater_ids = np.array([raters[f"r{i}"] for i in range(9)])
    perceived = rng.dirichlet(np.full(k, 0.4), size=n)
    per_clip = rng.integers(5, 10, size=n)
    rows = []
    for i in range(n):
        labels = rng.choice(k, size=per_clip[i], p=perceived[i])
        rows += [
            (int(ids[i]), int(rater_ids[j]), LABELS[lab], 0, 1.0, None)
            for j, lab in enumerate(labels)
        ]
    with ws.transaction():
        ws.conn.executemany(
            "INSERT OR IGNORE INTO votes (clip_id, annotator_id, label, rank, weight, raw_label) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )
        ws.conn.execute(
            "UPDATE datasets SET votes_version = votes_version + 1 WHERE id = ?", (ds_id,)
        )


def _run(ws: Workspace, ds_id: int, human: np.ndarray, seed: int, n_cands: int) -> None:
    """One run: 9 strategies of predictions (better ones closer to the human) + candidates."""
    rng = np.random.default_rng(seed)
    n, k = human.shape
    run = ws.add_run(
        RunIn(
            dataset_id=ds_id,
            model=f"synthetic/alm-{seed}",
            backend="synthetic",
            mode="label",
            n=n_cands,
            config={"bench": True, "seed": seed},
        )
    )
    ids = np.array(sorted(ws.clip_ids(ds_id).values()), dtype=np.int64)
    with ws.transaction():
        for j, strategy in enumerate(STRATEGIES.names()):
            quality = 0.3 + 0.07 * j
            Q = quality * human + (1 - quality) * rng.dirichlet(np.ones(k), size=n)
            blobs = codec.encode_many(Q)
            ws.conn.executemany(
                "INSERT INTO predictions (run_id, strategy, clip_id, distribution) "
                "VALUES (?, ?, ?, ?)",
                ((run.id, strategy, int(c), b) for c, b in zip(ids, blobs, strict=True)),
            )
        answers = rng.integers(0, k, size=(n, n_cands))
        valid = rng.random((n, n_cands)) > 0.05
        one_hot = [codec.encode_dist(np.eye(k)[a]) for a in range(k)]
        ws.conn.executemany(
            "INSERT INTO samples (run_id, clip_id, idx, label, distribution, valid) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (
                (
                    run.id,
                    int(ids[i]),
                    c,
                    LABELS[answers[i, c]] if valid[i, c] else None,
                    one_hot[answers[i, c]] if valid[i, c] else None,
                    int(valid[i, c]),
                )
                for i in range(n)
                for c in range(n_cands)
            ),
        )


def build_metrics_workspace(path: Path, n: int, runs: int, n_cands: int) -> float:
    if path.exists():
        return 0.0
    started = time.perf_counter()
    rng = np.random.default_rng(0)
    with Workspace.open(path, create=True) as ws:
        ds = ws.add_dataset("synthetic", "manifest", LABELS)
        ws.add_clips(ds.id, (ClipIn(key=f"clip{i:06d}", split="train") for i in range(n)))
        _votes(ws, ds.id, n, rng)
        refresh_human(ws, ds)  # before the runs: nothing to rescore
        from ambiscope.core.reference.human import read_human

        human = read_human(ws, ws.get_dataset(ds.id)).dist
        human = np.where(np.isnan(human), 1.0 / len(LABELS), human)
        for seed in range(runs):
            _run(ws, ds.id, human, seed + 1, n_cands)
    return time.perf_counter() - started


def build_subset_workspace(path: Path, audio: Path, n: int) -> float:
    if path.exists():
        return 0.0
    started = time.perf_counter()
    silence = np.zeros(1600, dtype=np.float32)
    for i in range(n):
        write_wav(audio / f"utt{i:05d}.wav", silence, 16000)
    rng = np.random.default_rng(1)
    with Workspace.open(path, create=True) as ws:
        ds = ws.add_dataset("tiny-wavs", "manifest", LABELS, root=str(audio))
        ws.add_clips(
            ds.id,
            (ClipIn(key=f"utt{i:05d}", path=f"utt{i:05d}.wav", split="test") for i in range(n)),
        )
        _votes(ws, ds.id, n, rng)
        refresh_human(ws, ds)
        from ambiscope.core.reference.human import read_human

        human = read_human(ws, ws.get_dataset(ds.id)).dist
        _run(ws, ds.id, np.where(np.isnan(human), 1.0 / len(LABELS), human), 1, 4)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=150_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--candidates", type=int, default=4, help="stored candidates per clip")
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--subset-clips", type=int, default=10_000)
    parser.add_argument("--workdir", type=Path, help="keep/reuse the built workspaces here")
    args = parser.parse_args()

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="ambiscope-bench-export-"))
    workdir.mkdir(parents=True, exist_ok=True)
    metrics_db = workdir / f"metrics-{args.clips}x{args.runs}.db"
    subset_db = workdir / f"subset-{args.subset_clips}.db"
    build_m = build_metrics_workspace(metrics_db, args.clips, args.runs, args.candidates)
    build_s = build_subset_workspace(subset_db, workdir / "wavs", args.subset_clips)

    with Workspace.open(metrics_db) as ws:
        started = time.perf_counter()
        table, prov = compute_benchmark(ws, options=TableOptions(bootstrap=args.resamples))
        text = render(table, "md", prov)
        metrics_s = time.perf_counter() - started
    out = workdir / "subset-out"
    with Workspace.open(subset_db) as ws:
        started = time.perf_counter()
        result = export_subset(ws, out, SubsetOptions(format="audiofolder", link=True, force=True))
        subset_s = time.perf_counter() - started
    rss = peak_rss_mb()

    n_members = prov["counts"]["predictions"]
    print(f"cpus={os.cpu_count()}  workdir={workdir}")
    print(
        f"build: metrics workspace {build_m:.1f} s, subset workspace {build_s:.1f} s (0 = reused)"
    )
    print(
        f"metrics: {args.clips} clips x {n_members} run-strategies, {args.resamples} resamples, "
        f"{len(table.rows)} rows, {len(text)} chars: {metrics_s:6.2f} s (target <= 30 s)"
    )
    print(
        f"export subset: {result.exported} clips audiofolder --link: {subset_s:6.2f} s "
        "(target <= 10 s)"
    )
    print(f"peak RSS: {rss:.0f} MB")
    numbers = {
        "bench": "export",
        "cpus": os.cpu_count(),
        "clips": args.clips,
        "run_strategies": n_members,
        "resamples": args.resamples,
        "metrics_s": round(metrics_s, 3),
        "subset_clips": result.exported,
        "subset_s": round(subset_s, 3),
        "peak_rss_mb": round(rss, 1),
        "targets": TARGETS,
        "ok": metrics_s <= TARGETS["metrics_s"] and subset_s <= TARGETS["subset_s"],
    }
    print(json.dumps(numbers))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
