"""Benchmark the OpenAI-compatible path against `ambiscope serve-model` replicas.

Two `ambiscope serve-model` processes serve the tiny Qwen2-Audio (1 torch thread each, the
way one GPU server per replica would be used); a demo workspace is sampled (label mode,
N = 8, the model as its own verifier, exact likelihood over prompt log-probs) by

* **one clip at a time against one replica** (the path before issue 14: requests fan out
  inside a clip only), and
* **clips in flight against both replicas** (``--concurrency 8``, ``--base-url`` twice).

Each round runs both variants on fresh copies of the workspace, rounds are interleaved and
the medians reported. The servers count the requests they hold
(``/v1/ambiscope/in-flight``); the time-weighted mean over the pipelined run says how busy
the replicas were kept, which on a GPU server that batches is what becomes throughput.
Target (issue 14): >= 2x the clips/s and >= 6 requests in flight on average.

Run: ``.venv/bin/python bench/bench_openai.py [--clips 16] [--rounds 3]``; prints readable
lines, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from benchlib import print_targets, tiny_workbench

TARGETS = {"speedup": (">=", 2.0), "mean_in_flight": (">=", 6.0)}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_replica(model: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "ambiscope.tui.cli.main", "serve-model", str(model)]
    cmd += ["--port", str(port), "--device", "cpu", "--served-model-name", "tiny"]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_ready(url: str, proc: subprocess.Popen, seconds: float = 120.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"replica exited: {proc.stderr.read().decode()[-500:]}")
        try:
            with urllib.request.urlopen(f"{url}/models", timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"replica at {url} did not start")


def in_flight(url: str, reset: bool = False) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{url}/ambiscope/in-flight" + ("/reset" if reset else ""),
        method="POST" if reset else "GET",
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        return json.loads(resp.read())


def run_once(db: Path, urls: list[str], concurrency: int, pipelined: bool, seed: int) -> float:
    """Clips/s of one sample run over a fresh copy of the workspace."""
    from ambiscope.core.alm.backends.openai import OpenAIBackend
    from ambiscope.core.scaling.run import RunSpec, execute_run
    from ambiscope.db import Workspace

    class OneClipAtATime(OpenAIBackend):
        """The path before issue 14: requests fan out inside a clip only."""

        @property
        def clips_in_flight(self) -> int:
            return 1

    spec = RunSpec(
        dataset="demo",
        model="tiny",
        backend="openai",
        base_url=tuple(urls) if len(urls) > 1 else urls[0],
        n=8,
        max_new_tokens=8,
        verifier="self",
        concurrency=concurrency,
        seed=seed,
        timeout=300.0,
    )
    cls = OpenAIBackend if pipelined else OneClipAtATime
    backend = cls("tiny", base_url=spec.base_url, concurrency=concurrency, timeout=300.0)
    with Workspace.open(db) as ws:
        result = execute_run(ws, spec, backend=backend, verifier=backend)
    backend.close()
    if result.failed:
        raise RuntimeError(f"{result.failed} clips failed: {result.failures[:2]}")
    return result.processed / result.seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model, base = tiny_workbench(work, args.clips)
        ports = [_free_port(), _free_port()]
        urls = [f"http://127.0.0.1:{p}/v1" for p in ports]
        procs = [start_replica(model, p) for p in ports]
        try:
            for url, proc in zip(urls, procs, strict=True):
                wait_ready(url, proc)
            times: dict[str, list[float]] = {"one_clip_one_replica": [], "pipelined_two": []}
            flights: list[float] = []
            for round_ in range(args.rounds):
                for name in times:
                    db = work / f"{name}-{round_}.db"
                    shutil.copy(base, db)
                    pipelined = name == "pipelined_two"
                    for url in urls:
                        in_flight(url, reset=True)
                    rate = run_once(
                        db, urls if pipelined else urls[:1], args.concurrency, pipelined, round_
                    )
                    times[name].append(rate)
                    if pipelined:
                        flights.append(sum(in_flight(url)["mean"] for url in urls))
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                proc.wait(timeout=30)
    one = statistics.median(times["one_clip_one_replica"])
    two = statistics.median(times["pipelined_two"])
    summary = {
        "one_clip_one_replica_clips_per_s": one,
        "pipelined_two_replicas_clips_per_s": two,
        "speedup": two / one,
        "mean_in_flight": statistics.median(flights),
    }
    print(
        f"{args.clips} clips, N=8, verifier self, exact likelihood over HTTP, "
        f"{args.rounds} interleaved rounds (medians):"
    )
    print(f"  one clip at a time, one replica: {one:.2f} clips/s")
    print(
        f"  clips in flight (--concurrency {args.concurrency}), two replicas: {two:.2f} "
        f"clips/s ({two / one:.2f}x); requests in flight on average {summary['mean_in_flight']:.1f}"
    )
    print_targets(summary, TARGETS)
    print(json.dumps({"bench": "openai", "clips": args.clips, "median": summary, "runs": times}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
