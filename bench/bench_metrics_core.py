"""Benchmark ambiscope.core.metrics.functions at corpus scale: 150,000 clips x 10 labels.

Targets (2 CPU cores): metric_table for 3 ambiguity groups + "all" without bootstrap <= 2 s;
bootstrap_ci with 1000 resamples for every metric <= 20 s; peak RSS <= 2 GB.

Run: ``.venv/bin/python bench/bench_metrics_core.py [--clips N] [--resamples B]``.
Prints readable lines, then one JSON line with every number.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
from benchlib import peak_rss_mb

from ambiscope.core.metrics import METRICS
from ambiscope.core.metrics.resampling import bootstrap_ci, compute_all
from ambiscope.core.metrics.table import metric_table

TARGETS = {"table_s": 2.0, "bootstrap_s": 20.0, "peak_rss_mb": 2048.0}


def make_data(n: int, k: int, seed: int, human: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Human distributions, a model that partly tracks them, and random ambiguity groups.

    ``human="dirichlet"``: continuous human distributions (no ties). ``human="votes"``: 6
    annotator votes per clip, like CREMA-D/IEMOCAP, so human entropies tie massively (the
    Spearman tie-group path).
    """
    rng = np.random.default_rng(seed)
    P = rng.dirichlet(np.full(k, 0.5), size=n)
    if human == "votes":
        P = rng.multinomial(6, P).astype(np.float64) / 6.0
    Q = 0.6 * P + 0.4 * rng.dirichlet(np.ones(k), size=n)
    groups = rng.choice(np.array(["low", "medium", "high"]), size=n)
    return P, Q, groups


def timed(fn, *args, **kwargs) -> tuple[object, float]:
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=150_000)
    parser.add_argument("--labels", type=int, default=10)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--human", choices=("dirichlet", "votes"), default="dirichlet")
    args = parser.parse_args()

    P, Q, groups = make_data(args.clips, args.labels, args.seed, args.human)
    order = ["low", "medium", "high"]
    rows, table_s = timed(metric_table, P, Q, groups, order=order)
    point, compute_s = timed(compute_all, P, Q)
    cis, boot_s = timed(bootstrap_ci, P, Q, n_resamples=args.resamples, seed=args.seed)
    rss = peak_rss_mb()

    print(f"data: {args.clips} clips x {args.labels} labels ({args.human}), cpus={os.cpu_count()}")
    print(f"compute_all (all clips):               {compute_s:7.3f} s")
    print(f"metric_table (3 groups + all):         {table_s:7.3f} s  (target <= 2 s)")
    print(
        f"bootstrap_ci ({args.resamples} resamples, all metrics): {boot_s:7.3f} s  (target <= 20 s)"
    )
    print(f"peak RSS:                              {rss:7.1f} MB (target <= 2048 MB)")
    for m in METRICS:
        p, lo, hi = cis[m]
        print(f"  {m:17s} {p:9.5f}  [{lo:9.5f}, {hi:9.5f}]")
    print("  rows: " + ", ".join(f"{r['group']}(n={r['n']}, js={r['js']:.4f})" for r in rows))

    results = {
        "bench": "metrics_core",
        "clips": args.clips,
        "labels": args.labels,
        "human": args.human,
        "resamples": args.resamples,
        "cpus": os.cpu_count(),
        "compute_all_s": round(compute_s, 4),
        "table_s": round(table_s, 4),
        "bootstrap_s": round(boot_s, 4),
        "peak_rss_mb": round(rss, 1),
        "targets": TARGETS,
        "ok": table_s <= TARGETS["table_s"]
        and boot_s <= TARGETS["bootstrap_s"]
        and rss <= TARGETS["peak_rss_mb"],
        "js": point["js"],
    }
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
