"""Time an MSP-Podcast-sized import (read + write_corpus) into a fresh workspace.

Generates MSP-Podcast-shaped label files in a temporary folder (v2 layout:
`Labels/labels_consensus.csv` and `Labels/labels_detailed.csv`, no audio) with a realistic
label mix (neutral/happy heavy, Other-xxx free text, secondary lists that often repeat the
major label and use words outside the label set), then times `ambiscope.core.corpora.import_corpus`.
Prints readable lines and one JSON line. Target: <= 30 s for 150k clips / ~1M rater rows
on a 2-core machine.

Usage: `python bench/bench_import_msp.py [--clips N] [--raters-mean R] [--profile]`
"""

from __future__ import annotations

import argparse
import cProfile
import csv
import json
import os
import pstats
import random
import tempfile
import time
from pathlib import Path

from ambiscope.core.corpora import import_corpus, msp_podcast
from ambiscope.core.corpora.base import ImportOptions, write_corpus
from ambiscope.db import Workspace

CONSENSUS = {
    "N": 0.33,
    "H": 0.20,
    "X": 0.16,
    "A": 0.08,
    "S": 0.08,
    "U": 0.03,
    "C": 0.03,
    "O": 0.03,
    "D": 0.02,
    "F": 0.01,
    "Y": 0.0,
}
CODE_WORD = {
    "N": "Neutral",
    "H": "Happy",
    "A": "Angry",
    "S": "Sad",
    "U": "Surprise",
    "C": "Contempt",
    "D": "Disgust",
    "F": "Fear",
}
OTHERS = ["Other-Bored", "Other-Sarcastic", "Other-Tired", "Other-Confused", "Other-Curious"]
SECONDARY = [
    "Concerned",
    "Amused",
    "Frustrated",
    "Disappointed",
    "Excited",
    "Confused",
    "Annoyed",
    "Depressed",
    "Sad",
    "Happy",
    "Angry",
    "Neutral",
    "Surprise",
    "Contempt",
    "Disgust",
    "Fear",
    "Other-Calm",
]
SPLITS = [("Train", 0.6), ("Development", 0.15), ("Test1", 0.15), ("Test2", 0.08), ("Test3", 0.02)]


def _pick(rng: random.Random, table: dict[str, float] | list[tuple[str, float]]) -> str:
    items = list(table.items()) if isinstance(table, dict) else table
    return rng.choices([k for k, _ in items], weights=[w for _, w in items])[0]


def generate(folder: Path, n_clips: int, raters_mean: float, seed: int = 7) -> int:
    """Write the two label tables; returns the number of rater rows."""
    rng = random.Random(seed)
    labels = folder / "Labels"
    labels.mkdir(parents=True)
    workers = [f"WORKER{i:07d}" for i in range(12_000)]
    rows = 0
    with (
        (labels / "labels_consensus.csv").open("w", newline="") as fc,
        (labels / "labels_detailed.csv").open("w", newline="") as fd,
    ):
        cons, det = csv.writer(fc), csv.writer(fd)
        cons.writerow(
            ["FileName", "EmoClass", "EmoAct", "EmoVal", "EmoDom", "SpkrID", "Gender", "Split_Set"]
        )
        det.writerow(
            [
                "FileName",
                "WorkerID",
                "EmoClass_Major",
                "EmoClass_Second",
                "EmoAct",
                "EmoVal",
                "EmoDom",
            ]
        )
        codes = rng.choices(list(CONSENSUS), weights=list(CONSENSUS.values()), k=n_clips)
        for i in range(n_clips):
            name = f"MSP-PODCAST_{i // 40:04d}_{i % 40:04d}.wav"
            code = codes[i]
            speaker = str(rng.randrange(3000)) if rng.random() > 0.1 else "Unknown"
            gender = rng.choice(["Female", "Male"]) if speaker != "Unknown" else "Unknown"
            cons.writerow(
                [
                    name,
                    code,
                    f"{rng.uniform(1, 7):.6f}",
                    f"{rng.uniform(1, 7):.6f}",
                    f"{rng.uniform(1, 7):.6f}",
                    speaker,
                    gender,
                    _pick(rng, SPLITS),
                ]
            )
            n = max(1, round(rng.gauss(raters_mean, 1.5)))
            for worker in rng.sample(workers, n):
                major = _major(rng, code)
                det.writerow(
                    [
                        name,
                        worker,
                        major,
                        _secondary(rng, major),
                        f"{rng.randint(1, 7)}.000000",
                        f"{rng.randint(1, 7)}.000000",
                        f"{rng.randint(1, 7)}.000000",
                    ]
                )
                rows += 1
    return rows


def _major(rng: random.Random, code: str) -> str:
    if rng.random() < 0.55 and code in CODE_WORD:
        return CODE_WORD[code]
    if rng.random() < 0.08:
        return rng.choice(OTHERS)
    return CODE_WORD[_pick(rng, {k: v for k, v in CONSENSUS.items() if k in CODE_WORD})]


def _secondary(rng: random.Random, major: str) -> str:
    words = [major] if rng.random() < 0.6 else []
    words += rng.sample(SECONDARY, rng.choice([0, 0, 1, 1, 1, 2, 3]))
    return ",".join(dict.fromkeys(words))


def timed_import(folder: Path, db: Path) -> dict[str, float | int]:
    options = ImportOptions()
    with Workspace.open(db, create=True) as ws:
        t0 = time.perf_counter()
        parsed = msp_podcast.read(folder, options)
        t1 = time.perf_counter()
        result = write_corpus(ws, parsed, options, default_name="msp-podcast")
        t2 = time.perf_counter()
    return {
        "read_s": t1 - t0,
        "write_s": t2 - t1,
        "total_s": t2 - t0,
        "clips": result.clips_total,
        "votes": result.votes_written,
        "raw_votes": len(parsed.votes),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=150_000)
    parser.add_argument("--raters-mean", type=float, default=6.7)
    parser.add_argument("--profile", action="store_true", help="cProfile the import")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "MSP-PODCAST"
        t0 = time.perf_counter()
        rows = generate(folder, args.clips, args.raters_mean)
        print(
            f"generated {args.clips} clips, {rows} rater rows in {time.perf_counter() - t0:.1f} s"
        )
        if args.profile:
            profiler = cProfile.Profile()
            profiler.enable()
        t0 = time.perf_counter()
        with Workspace.open(Path(tmp) / "check.db", create=True) as ws:
            import_corpus(ws, "msp-podcast", folder, ImportOptions())
        end_to_end = time.perf_counter() - t0
        if args.profile:
            profiler.disable()
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
        split = timed_import(folder, Path(tmp) / "split.db")
    print(
        f"import_corpus end to end: {end_to_end:.1f} s (target <= 30 s), "
        f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores"
    )
    print(f"  read (parse label files): {split['read_s']:.1f} s, {split['raw_votes']} raw votes")
    print(
        f"  write_corpus (map + SQLite): {split['write_s']:.1f} s, {split['clips']} clips, "
        f"{split['votes']} votes"
    )
    print(
        json.dumps(
            {
                "bench": "import_msp",
                "clips": split["clips"],
                "rater_rows": rows,
                "votes": split["votes"],
                "import_s": round(end_to_end, 2),
                "read_s": round(split["read_s"], 2),
                "write_s": round(split["write_s"], 2),
                "target_s": 30,
                "ok": end_to_end <= 30,
                "load_avg_1m": round(os.getloadavg()[0], 2),  # other work skews the times
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
