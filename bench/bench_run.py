"""Throughput of a full sampling run on the demo workspace (issue 4 target).

Builds the demo workspace (60 eSpeak clips) and the tiny Qwen2-Audio checkpoint, then
runs `execute_run` with N=16, every strategy (verifier = the same model, label
likelihood on) and reports clips/s and the share of wall time spent inside backend
calls versus everything else (audio loading, parsing, aggregation, SQLite writes; the
target is < 10% for the rest). Prints readable lines and one JSON line.

Run: .venv/bin/python bench/bench_run.py [--clips 60] [--n 16] [--max-new-tokens 8]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from ambiscope.core.alm.tiny import build_tiny_model
from ambiscope.core.demo import DemoSpec, build_demo
from ambiscope.core.scaling.run import RunSpec, execute_run
from ambiscope.db import Workspace


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=60)
    parser.add_argument("--n", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=8)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "demo.db"
        build_demo(db, DemoSpec(n_clips=args.clips))
        model = build_tiny_model(Path(tmp) / "tiny")
        spec = RunSpec(
            dataset="demo",
            model=str(model),
            n=args.n,
            max_new_tokens=args.max_new_tokens,
            verifier="self",
            seed=0,
        )
        with Workspace.open(db) as ws:
            t0 = time.perf_counter()
            result = execute_run(ws, spec)
            wall = time.perf_counter() - t0
            strategies = ws.strategies(result.run.id)
    other = result.seconds - result.model_seconds
    out = {
        "bench": "run",
        "clips": result.processed,
        "n": args.n,
        "max_new_tokens": args.max_new_tokens,
        "strategies": len(strategies),
        "wall_s_incl_model_load": round(wall, 2),
        "loop_s": round(result.seconds, 2),
        "clips_per_s": round(result.processed / result.seconds, 2),
        "model_share": round(result.model_seconds / result.seconds, 3),
        "other_share": round(other / result.seconds, 3),
        "other_ms_per_clip": round(1000 * other / max(result.processed, 1), 1),
        "failed": result.failed,
    }
    for key, value in out.items():
        print(f"{key:>24}: {value}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
