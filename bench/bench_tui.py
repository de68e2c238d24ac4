"""TUI benchmark at MSP-Podcast scale (issue targets in brackets).

Builds (or reuses, with --keep PATH) a synthetic workspace of 150,000 clips with ~1M votes,
cached human distributions and one run with four strategies of predictions (JS/BC/agreement
stored), then drives the real Textual app headlessly (`run_test`) and times:
  - start to first paint of the clip table with rows          [<= 1.5 s]
  - sort by JS (descending), until the first page shows        [<= 150 ms]
  - sort by the audit priority (4 strategies), first and again (no target)
  - apply a filter (`ambiguity:high disagree`)                 [<= 150 ms]
  - move the cursor 100 rows (mean per key press, worst case)  [<= 150 ms]
  - one more key press until the detail pane shows that clip   (no target)
  - peak memory (max RSS of the process)                       [<= 500 MB]
Prints readable lines and, last, one JSON line.

Run: .venv/bin/python bench/bench_tui.py [--clips 150000] [--keep /tmp/bench-tui.db]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from benchlib import add_simulated_votes, peak_rss_mb, simulated_votes

from ambiscope.core.labels import CORPUS_LABEL_SETS
from ambiscope.core.metrics.functions import bhattacharyya, js_divergence
from ambiscope.core.reference.human import refresh_human
from ambiscope.db import ClipIn, Prediction, RunIn, Workspace

STRATEGIES = ("wbon", "vote", "single", "likelihood")
TARGETS = {
    "first_paint_s": 1.5,
    "sort_js_ms": 150,
    "filter_ms": 150,
    "move_mean_ms": 150,
    "move_max_ms": 150,
    "peak_rss_mb": 500,
}


def build_workspace(path: Path, n_clips: int, seed: int = 0) -> None:
    """A 150k-clip workspace written with the db layer's bulk writers (no audio)."""
    rng = np.random.default_rng(seed)
    labels = CORPUS_LABEL_SETS["msp-podcast"]
    k = len(labels)
    with Workspace.open(path, create=True) as ws:
        ds = ws.add_dataset("bench", "msp-podcast", labels)
        splits = np.array(["Train", "Development", "Test1"])[rng.integers(0, 3, n_clips)]
        ws.add_clips(
            ds.id,
            (
                ClipIn(
                    f"MSP-PODCAST_{i:07d}",
                    split=str(splits[i]),
                    transcript=f"utterance number {i}",
                )
                for i in range(n_clips)
            ),
        )
        keys = ws.clip_ids(ds.id)
        clip_ids = np.array([keys[f"MSP-PODCAST_{i:07d}"] for i in range(n_clips)])
        votes = simulated_votes(n_clips, 6.7, k, rng)
        add_simulated_votes(ws, ds.id, clip_ids, labels, votes)
        refresh_human(ws, ds)
        human = {
            int(r[0]): r for r in ws.human_rows(ds.id)
        }  # clip_id -> (.., blob, .., majority, ..)
        run = ws.add_run(RunIn(ds.id, "bench/alm", "transformers", "label", 8, name="bench"))
        from ambiscope.db import codec

        p = codec.decode_many((human[int(c)][1] for c in clip_ids), k).astype(np.float64)
        ok = ~np.isnan(p).any(axis=1)
        label_index = {name: i for i, name in enumerate(labels)}
        base = rng.dirichlet(np.full(k, 0.7), size=n_clips)
        # four strategies that mostly agree (the audit priority reads their pairwise spread)
        for strategy in STRATEGIES:
            q = 0.7 * base + 0.3 * rng.dirichlet(np.full(k, 0.7), size=n_clips)
            js = np.full(n_clips, np.nan)
            bc = np.full(n_clips, np.nan)
            js[ok] = js_divergence(p[ok] / p[ok].sum(1, keepdims=True), q[ok])
            bc[ok] = bhattacharyya(p[ok] / p[ok].sum(1, keepdims=True), q[ok])
            ent = -(q * np.log2(np.clip(q, 1e-12, 1))).sum(axis=1)
            argmax = q.argmax(axis=1)
            preds = []
            for i in range(n_clips):
                maj = human[int(clip_ids[i])][4]
                preds.append(
                    Prediction(
                        run.id,
                        strategy,
                        int(clip_ids[i]),
                        q[i],
                        labels[int(argmax[i])],
                        float(ent[i]),
                        None if not ok[i] else float(js[i]),
                        None if not ok[i] else float(bc[i]),
                        None if not ok[i] else bool(label_index.get(maj, -1) == argmax[i]),
                    )
                )
            ws.add_predictions(preds)
        # a few audit rows so the flags/tags columns have content
        ws.bulk_set("flags", clip_ids[::997].tolist(), "ambiguous", True)
        ws.bulk_set("tags", clip_ids[::1511].tolist(), "review", True)


async def drive(db_path: Path, results: dict[str, float]) -> None:
    """Open the app headlessly and time the interactions (see module docstring)."""
    os.environ.setdefault("AMBISCOPE_CONFIG", str(db_path.parent / "bench-settings.json"))
    from ambiscope.tui.app import AmbiscopeApp
    from ambiscope.tui.widgets.clip_table import ClipTable

    started = time.perf_counter()
    app = AmbiscopeApp(db_path)
    async with app.run_test(size=(160, 48)) as pilot:
        table = app.screen.query_one(ClipTable)

        async def until(predicate, timeout: float = 30.0) -> float:
            t0 = time.perf_counter()
            while not predicate():
                await pilot.pause(0.002)
                if time.perf_counter() - t0 > timeout:
                    raise TimeoutError("the table did not update in time")
            return time.perf_counter() - t0

        await until(lambda: table.first_page_ready)
        await pilot.pause()
        results["first_paint_s"] = round(time.perf_counter() - started, 3)
        results["rows"] = table.row_count

        async def resorted(column: str) -> float:
            """Milliseconds from asking for `column`'s sort to its first page on screen."""
            before = table.generation
            t0 = time.perf_counter()
            app.screen.set_sort(column, descending=True)
            await until(lambda: table.generation > before and table.first_page_ready)
            await pilot.pause()
            return round((time.perf_counter() - t0) * 1000, 1)

        results["sort_js_ms"] = await resorted("js")
        # the audit priority: the first sort reads every strategy of the run (then kept per
        # run); a later one, after another sort, reuses them
        results["sort_priority_first_ms"] = await resorted("priority")
        await resorted("js")
        results["sort_priority_again_ms"] = await resorted("priority")
        await resorted("js")

        gen = table.generation
        t0 = time.perf_counter()
        app.screen.apply_filter("ambiguity:high disagree")
        await until(lambda: table.generation > gen and table.first_page_ready)
        await pilot.pause()
        results["filter_ms"] = round((time.perf_counter() - t0) * 1000, 1)
        results["filtered_rows"] = table.row_count

        table.focus()
        times = []
        for _ in range(100):
            t0 = time.perf_counter()
            await pilot.press("down")
            await until(lambda: table.row_loaded(table.cursor_row))
            times.append(time.perf_counter() - t0)
        results["move_mean_ms"] = round(1000 * sum(times) / len(times), 1)
        results["move_max_ms"] = round(1000 * max(times), 1)
        results["cursor_row"] = table.cursor_row

        # the detail pane follows once the cursor rests (debounced while keys repeat)
        screen = app.screen
        await until(lambda: screen.detail is not None)
        await pilot.pause()
        t0 = time.perf_counter()
        await pilot.press("down")
        await until(lambda: screen.detail.clip.id == table.current_clip_id)
        await pilot.pause()
        results["detail_ms"] = round((time.perf_counter() - t0) * 1000, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=150_000)
    parser.add_argument("--keep", type=Path, help="Build into (or reuse) this workspace file.")
    args = parser.parse_args()
    results: dict[str, float] = {"clips": args.clips}
    with tempfile.TemporaryDirectory() as tmp:
        path = args.keep or Path(tmp) / "bench-tui.db"
        if not path.exists():
            # build in a child process so the peak RSS below is the TUI's alone
            t0 = time.perf_counter()
            child = multiprocessing.get_context("spawn").Process(
                target=build_workspace, args=(path, args.clips)
            )
            child.start()
            child.join()
            if child.exitcode != 0:
                raise SystemExit(f"building the workspace failed (exit {child.exitcode})")
            results["build_s"] = round(time.perf_counter() - t0, 1)
        os.environ["AMBISCOPE_CONFIG"] = str(Path(tmp) / "settings.json")
        asyncio.run(drive(path, results))
    results["peak_rss_mb"] = round(peak_rss_mb(), 1)
    for key, value in results.items():
        limit = TARGETS.get(key)
        verdict = "" if limit is None else (" ok" if value <= limit else f" OVER {limit}")
        print(f"{key:>16}: {value}{verdict}")
    print(json.dumps({"bench": "tui", **results}))


if __name__ == "__main__":
    main()
