"""Time a full CREMA-D import (read + write_corpus) into a fresh workspace.

Prints one JSON line: seconds for the whole `import_corpus` call and for its two halves,
clip and vote counts. The target is <= 3 s for the voice modality of the real tables
(7442 clips). Usage: `python bench/bench_import_crema.py [CREMA_D_ROOT] [--modality M]`.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from ambiscope.core.corpora import crema_d, import_corpus
from ambiscope.core.corpora.base import ImportOptions
from ambiscope.db import Workspace

ROOT = Path(__file__).resolve().parents[1]


def find_crema(start: Path) -> Path | None:
    """The shared CREMA-D tables: a `shared/datasets/crema-d` beside some parent folder."""
    for folder in (start, *start.parents):
        candidate = folder / "shared" / "datasets" / "crema-d"
        if (candidate / "processedResults" / "tabulatedVotes.csv").is_file():
            return candidate
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", nargs="?", type=Path, default=None)
    parser.add_argument("--modality", default="voice", choices=sorted(crema_d.MODALITIES))
    parser.add_argument("--repeat", type=int, default=3, help="report the best of N runs")
    args = parser.parse_args()
    root = args.root or find_crema(ROOT)
    if root is None:
        print(json.dumps({"error": "no shared/datasets/crema-d found; pass the root"}))
        return 2
    options = ImportOptions(extra={"modality": args.modality})
    best: dict[str, float | int | str] = {}
    for _ in range(args.repeat):
        with (
            tempfile.TemporaryDirectory() as tmp,
            Workspace.open(Path(tmp) / "bench.db", create=True) as ws,
        ):
            t0 = time.perf_counter()
            parsed = crema_d.read(root, options)
            t_read = time.perf_counter() - t0
            t1 = time.perf_counter()
            result = import_corpus(ws, "crema-d", root, options)
            t_total = time.perf_counter() - t1
            row = {
                "bench": "import_crema",
                "modality": args.modality,
                "clips": result.clips_total,
                "votes": result.votes_written,
                "read_s": round(t_read, 3),
                "import_corpus_s": round(t_total, 3),
                "write_s": round(t_total - t_read, 3),
                "parsed_clips": len(parsed.clips),
            }
        if not best or row["import_corpus_s"] < best["import_corpus_s"]:
            best = row
    print(json.dumps(best))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
