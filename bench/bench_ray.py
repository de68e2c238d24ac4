"""Benchmark sampling runs on Ray actors against one local process.

A demo workspace is sampled with the tiny Qwen2-Audio (label mode, N = 8, the model as its
own verifier, exact likelihood) three ways, every one with 1 torch thread per model copy:

* **one local process**: the run in this process, the model loaded here;
* **Ray, 1 actor**: the same run with ``--ray --ray-actors 1`` (the driver reads audio and
  commits, the actor runs the model): the cost of the Ray path itself;
* **Ray, 2 actors**: ``--ray --ray-actors 2`` on a local Ray instance.

Clips/s is the run loop's own time (``RunResult.seconds``: first dispatch to last commit),
so model loading and actor start-up are not counted; they are printed apart. Each round
runs the three on fresh copies of the workspace (new run rows), rounds are interleaved and
the medians reported. Targets (issue 14): 2 actors >= 1.6x one local process; the 1-actor
overhead <= 15%.

Run: ``.venv/bin/python bench/bench_ray.py [--clips 48] [--rounds 3]``; prints readable
lines, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from benchlib import print_targets, tiny_workbench

TARGETS = {"speedup_2_actors": (">=", 1.6), "overhead_1_actor": ("<=", 0.15)}


def run_once(db: Path, spec: Any, backend: Any = None) -> tuple[float, float]:
    """(clips/s of the run loop, seconds before the loop: model load / actor start)."""
    from ambiscope.core.scaling.run import execute_run
    from ambiscope.db import Workspace

    started = time.perf_counter()
    with Workspace.open(db) as ws:
        result = execute_run(ws, spec, backend=backend, verifier=backend)
    total = time.perf_counter() - started
    if result.failed or not result.processed:
        raise RuntimeError(f"{result.failed} clips failed: {result.failures[:2]}")
    return result.processed / result.seconds, total - result.seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=48)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=16)
    args = parser.parse_args()

    import ray
    import torch

    from ambiscope.core.alm.backends.transformers.backend import TransformersBackend
    from ambiscope.core.scaling.run import RunSpec

    torch.set_num_threads(1)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    rates: dict[str, list[float]] = {"local": [], "ray_1_actor": [], "ray_2_actors": []}
    startup: dict[str, list[float]] = {name: [] for name in rates}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model, base = tiny_workbench(work, args.clips)
        common = dict(
            dataset="demo",
            model=str(model),
            n=args.n,
            max_new_tokens=args.max_new_tokens,
            verifier="self",
            device="cpu",
        )
        for round_ in range(args.rounds):
            for name in rates:
                db = work / f"{name}-{round_}.db"
                shutil.copy(base, db)
                spec = RunSpec(**common, seed=round_)
                if name == "local":
                    t0 = time.perf_counter()
                    backend = TransformersBackend(str(model), device="cpu")
                    load = time.perf_counter() - t0
                    rate, before = run_once(db, spec, backend)
                    backend.close()
                    before += load
                else:
                    actors = 1 if name == "ray_1_actor" else 2
                    spec = RunSpec(**common, seed=round_, ray="local", ray_actors=actors)
                    rate, before = run_once(db, spec)
                rates[name].append(rate)
                startup[name].append(before)
    ray.shutdown()
    med = {name: statistics.median(values) for name, values in rates.items()}
    summary = {
        **{f"{name}_clips_per_s": value for name, value in med.items()},
        "speedup_2_actors": med["ray_2_actors"] / med["local"],
        "overhead_1_actor": med["local"] / med["ray_1_actor"] - 1.0,
    }
    print(
        f"{args.clips} clips, N={args.n}, max_new_tokens={args.max_new_tokens}, verifier self, "
        f"exact likelihood, 1 torch thread per model, {args.rounds} interleaved rounds (medians):"
    )
    for name, value in med.items():
        print(
            f"  {name:>13}: {value:.2f} clips/s "
            f"(start-up {statistics.median(startup[name]):.1f} s, not counted)"
        )
    print_targets(summary, TARGETS)
    print(json.dumps({"bench": "ray", "clips": args.clips, "median": summary, "runs": rates}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
