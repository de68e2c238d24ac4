"""Foundation benchmark at MSP-Podcast scale (issue targets in brackets).

Builds a synthetic workspace of 150,000 clips and ~1,000,000 votes over 9 labels (no
audio), then times:
  - bulk insert of clips, annotators and votes            [<= 20 s]
  - human distributions + ambiguity refresh for all clips  [<= 5 s]
  - the full metric table (all metrics, 3 ambiguity levels + all) against a random
    model distribution                                      [<= 2 s]
  - bootstrap 95% CIs with 1000 resamples                   [<= 20 s]
  - peak memory (max RSS)                                   [<= 2 GB]
Prints readable lines and, last, one JSON line.

Run: .venv/bin/python bench/bench_foundation.py [--clips 150000] [--votes-per-clip 6.7]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from benchlib import add_simulated_votes, peak_rss_mb, simulated_votes

from ambiscope.core.labels import CORPUS_LABEL_SETS
from ambiscope.core.metrics.resampling import bootstrap_ci
from ambiscope.core.metrics.table import metric_table
from ambiscope.core.reference.human import load_human, refresh_human
from ambiscope.db import ClipIn, Workspace


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=150_000)
    parser.add_argument("--votes-per-clip", type=float, default=6.7)
    parser.add_argument("--bootstrap", type=int, default=1000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    labels = CORPUS_LABEL_SETS["msp-podcast"]
    k = len(labels)
    clip_idx, label_idx, rater_idx = simulated_votes(args.clips, args.votes_per_clip, k, rng)
    results: dict[str, float | int] = {"clips": args.clips, "votes": len(clip_idx), "k": k}

    with (
        tempfile.TemporaryDirectory() as tmp,
        Workspace.open(Path(tmp) / "bench.db", create=True) as ws,
    ):
        t0 = time.perf_counter()
        ds = ws.add_dataset("bench", "msp-podcast", labels)
        splits = np.array(["Train", "Development", "Test1"])[rng.integers(0, 3, args.clips)]
        ws.add_clips(
            ds.id,
            (ClipIn(f"MSP-PODCAST_{i:07d}.wav", split=str(splits[i])) for i in range(args.clips)),
        )
        keys = ws.clip_ids(ds.id)
        clip_ids = np.array([keys[f"MSP-PODCAST_{i:07d}.wav"] for i in range(args.clips)])
        add_simulated_votes(ws, ds.id, clip_ids, labels, (clip_idx, label_idx, rater_idx))
        results["insert_s"] = round(time.perf_counter() - t0, 2)

        t0 = time.perf_counter()
        summary = refresh_human(ws, ds)
        results["human_refresh_s"] = round(time.perf_counter() - t0, 2)
        results.update({f"level_{k_}": v for k_, v in summary.level_counts.items()})

        t0 = time.perf_counter()
        human = load_human(ws, ds)
        results["human_load_s"] = round(time.perf_counter() - t0, 2)

    valid = human.valid
    p = human.dist[valid]
    groups = human.ambiguity[valid].astype(str)
    q = rng.dirichlet(np.ones(k), size=len(p))
    t0 = time.perf_counter()
    table = metric_table(p, q, groups)
    results["metric_table_s"] = round(time.perf_counter() - t0, 2)
    results["metric_rows"] = len(table)
    t0 = time.perf_counter()
    bootstrap_ci(p, q, n_resamples=args.bootstrap, seed=0)
    results["bootstrap_s"] = round(time.perf_counter() - t0, 2)
    results["bootstrap_resamples"] = args.bootstrap
    results["peak_rss_mb"] = round(peak_rss_mb(), 1)

    targets = {
        "insert_s": 20,
        "human_refresh_s": 5,
        "metric_table_s": 2,
        "bootstrap_s": 20,
        "peak_rss_mb": 2048,
    }
    for key, value in results.items():
        limit = targets.get(key)
        verdict = "" if limit is None else (" ok" if value <= limit else f" OVER {limit}")
        print(f"{key:>22}: {value}{verdict}")
    print(json.dumps({"bench": "foundation", **results}))


if __name__ == "__main__":
    main()
