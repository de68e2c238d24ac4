"""Benchmark encode-once sampling and label likelihood against their naive baselines.

Per clip (3 s of speech, eSpeak NG resampled to 16 kHz; noise if eSpeak is unavailable):

* **sampling** at each N of ``--ns`` (default 8 and 32): ``TransformersBackend.sample``
  (one prefill with the audio, KV cache expanded to N rows, one batched decode) vs plain
  ``generate`` over N copies of the inputs (what ``num_return_sequences=N`` does: N
  prefills, the audio encoded N times) vs N separate ``generate`` calls (what a naive loop
  does). Same GenerationConfig and per-candidate sampler; the bench checks that encode-once
  and the N-row generate give the same tokens.
  Target at N=32 >= 25x over num_return_sequences (issue 13; with 1 torch thread).
* **likelihood vs vote**: ``score_labels`` over 6 labels (one prefill + one 6-row forward) vs
  the N-sample label-mode vote it replaces (one-word answers: ``--vote-tokens`` new
  tokens), both the encode-once vote and the plain-generate vote. Target >= 20x.
* **a whole clip**: sampling + verifier (one prompt per answered label) + label likelihood
  vs sampling alone; the three share one processed input and one encoded audio prefix.
  Target <= 1.3x.
* **clips per batch**: ``sample_batch`` over B = 8 clips vs 8 one-clip ``sample`` calls
  (clips/s). Target >= 2x.
* **time outside model calls**: a real ``execute_run`` (label mode, verifier + likelihood)
  over a demo workspace; the share of its wall time not spent inside backend calls
  (parsing, aggregation, SQLite writes, audio loading). Target <= 15%.
* **cache expansion memory**: peak RSS growth of expanding a prompt cache to N rows and
  taking one decode step, deep copy + ``batch_repeat_interleave`` vs zero-copy views.

Every timed encode-once call starts from an empty prefix memo (``fresh``), so it pays for
the processor and the audio encoder as a new clip does.

Every variant of a clip is timed in the same round, rounds repeated ``--repeats`` times
(interleaved, so a busy machine slows all variants alike), and the median is reported.

The time split (processor, prefill, batched decode) is printed too, because the speedup is
bounded by it: encode-once costs P + D and plain generate N·P + D (P = one prefill,
D = the batched decode), so the ratio approaches N only when D << P.

Defaults to the tiny random checkpoint of ``--family`` (``ambiscope.core.alm.tiny``; default
qwen2_audio) on CPU (weights cannot be downloaded here); pass ``--model`` for a real
checkpoint (e.g. on a GPU machine).

Run: ``.venv/bin/python bench/bench_sampling.py [--model ID | --family F] [--clips 3]
[--ns 8 32] [--threads 1]``.
Prints readable lines, then one JSON line with every number.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ambiscope.core.alm.base import AudioInput, GenerationParams
from ambiscope.core.alm.prompts import DEFAULT_TEMPLATES, render, render_verifier
from ambiscope.core.audio import resample

TARGETS = {  # ratio: at least (>=) or at most (<=)
    "sampling_speedup": (">=", 25.0),
    "likelihood_vs_vote_speedup": (">=", 20.0),
    "likelihood_vs_plain_vote_speedup": (">=", 20.0),
    "full_clip_vs_sampling": ("<=", 1.3),
    "batch8_vs_batch1_clips_per_s": (">=", 2.0),
    "outside_model_share": ("<=", 0.15),
}
LABELS = ["neutral", "happy", "sad", "angry", "fearful", "disgusted"]
SENTENCES = (
    "I can't believe you did that to me again.",
    "The meeting has been moved to Thursday afternoon.",
    "Oh, that is wonderful news, thank you so much!",
)
# What a label-mode run sends: the default template (its system text is the verifier's too,
# so a clip's sampling, verifier and likelihood prompts share their audio prefix).
PROMPT = render(DEFAULT_TEMPLATES["label"], LABELS)


def clip_audio(index: int, rate: int, seconds: float = 3.0) -> tuple[AudioInput, str]:
    """3 s of synthetic speech at the model rate (padded/cut), or noise without eSpeak."""
    n = int(seconds * rate)
    try:
        from ambiscope.core.speech import synthesize

        pcm, sr = synthesize(SENTENCES[index % len(SENTENCES)], rate=150 + 20 * index)
        x = resample(pcm.astype(np.float32) / 32768.0, sr, rate)
        source = "espeak"
    except Exception:  # SpeechUnavailable, missing library: the timing is what matters
        x = 0.1 * np.random.default_rng(index).standard_normal(n).astype(np.float32)
        source = "noise"
    x = np.pad(x, (0, max(0, n - len(x))))[:n].astype(np.float32)
    return AudioInput(x, rate), source


def fresh(backend: Any, fn: Callable[[], Any]) -> Callable[[], Any]:
    """``fn`` as a new clip sees it: the backend's per-clip prefix memo emptied first."""

    def run() -> Any:
        backend._heads.clear()
        return fn()

    return run


def interleaved(variants: dict[str, Callable[[], Any]], repeats: int) -> dict[str, float]:
    """Median wall time of each variant over `repeats` rounds, every round running all of
    them in turn (a slow moment of a shared machine then hits each variant alike)."""
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name, fn in variants.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}


def plain_generate(
    backend: Any, audio: AudioInput, params: GenerationParams, calls: int = 1
) -> list[list[int]]:
    """The baselines: processor + generate over the full inputs (the audio encoded again for
    every row), N rows in one call (what ``num_return_sequences=N`` does) or, with
    `calls` = N, one row per call; the same per-candidate sampler as encode-once."""
    rows, per_call = [], params.n // calls
    for first in range(0, params.n, per_call):
        rows += _generate(backend, audio, params, first, per_call)
    return rows


def _generate(
    backend: Any, audio: AudioInput, params: GenerationParams, first: int, n: int
) -> list[list[int]]:
    import torch
    from transformers import LogitsProcessorList

    from ambiscope.core.alm.backends.transformers.backend import repeat_rows

    inputs = backend.build_inputs(audio, PROMPT)
    sampler = backend.sampler_for(params, params.seed, first, n)
    with torch.no_grad():
        out = backend.lm.generate(
            **repeat_rows(inputs, n),
            generation_config=backend.generation_config_for(params),
            logits_processor=LogitsProcessorList([sampler]),
        )
    prompt_len = inputs["input_ids"].shape[1]
    rows = []
    for seq in out[:, prompt_len:].tolist():
        cut = next((i + 1 for i, t in enumerate(seq) if t in backend._eos_ids), len(seq))
        rows.append(seq[:cut])
    return rows


def split_times(backend: Any, audio: AudioInput, n: int, repeats: int) -> dict[str, float]:
    """Processor, one prefill, an N-row prefill (what plain generate does first)."""
    import torch

    inputs = backend.build_inputs(audio, PROMPT)
    length = inputs["input_ids"].shape[1]
    big = {
        k: (v.repeat(n, *([1] * (v.dim() - 1))) if isinstance(v, torch.Tensor) else v)
        for k, v in inputs.items()
    }

    def prefill_n() -> None:
        with torch.no_grad():
            backend.lm(**big, use_cache=True)

    t = interleaved(
        {
            "processor_s": lambda: backend.build_inputs(audio, PROMPT),
            "prefill_1_s": lambda: backend._forward_prefix(inputs, length - 1),
            "prefill_n_s": prefill_n,
        },
        repeats,
    )
    return {
        **t,
        "prompt_tokens": int(length),
        "audio_tokens": int((inputs["input_ids"] == backend._audio_token_id).sum()),
    }


def bench_clip(backend: Any, audio: AudioInput, args: argparse.Namespace) -> dict[str, float]:
    out: dict[str, float] = {}
    for n in args.ns:
        params = GenerationParams(
            n=n, temperature=1.0, max_new_tokens=args.max_new_tokens, seed=args.seed
        )
        backend.sample(audio, PROMPT, params)  # warm-up (allocator, kernels)
        cands = fresh(backend, lambda p=params: backend.sample(audio, PROMPT, p))()
        same = [c.extra["token_ids"] for c in cands] == plain_generate(backend, audio, params)
        t = interleaved(
            {
                "encode_once": fresh(backend, lambda p=params: backend.sample(audio, PROMPT, p)),
                "generate_n": lambda p=params: plain_generate(backend, audio, p),
                "separate": lambda p=params, n=n: plain_generate(backend, audio, p, calls=n),
            },
            args.repeats,
        )
        out |= {
            f"encode_once_n{n}_s": t["encode_once"],
            f"generate_n{n}_s": t["generate_n"],
            f"separate_calls_n{n}_s": t["separate"],
            f"speedup_vs_generate_n{n}": t["generate_n"] / t["encode_once"],
            f"speedup_vs_separate_n{n}": t["separate"] / t["encode_once"],
            f"same_tokens_n{n}": float(same),
            f"mean_new_tokens_n{n}": statistics.fmean(c.n_tokens for c in cands),
        }
    n = max(args.ns)
    params = GenerationParams(
        n=n, temperature=1.0, max_new_tokens=args.max_new_tokens, seed=args.seed
    )
    vote = GenerationParams(n=n, temperature=1.0, max_new_tokens=args.vote_tokens, seed=args.seed)
    verifier_prompts = [render_verifier(LABELS, label) for label in LABELS[:3]]

    def whole_clip() -> None:
        backend.sample(audio, PROMPT, params)
        backend.verify(audio, verifier_prompts)  # one prompt per answered label
        backend.score_labels(audio, PROMPT, LABELS)

    t = interleaved(
        {
            "sampling": fresh(backend, lambda: backend.sample(audio, PROMPT, params)),
            "whole_clip": fresh(backend, whole_clip),
            "score_labels": fresh(backend, lambda: backend.score_labels(audio, PROMPT, LABELS)),
            "vote": fresh(backend, lambda: backend.sample(audio, PROMPT, vote)),
            "plain_vote": lambda: plain_generate(backend, audio, vote),
        },
        args.repeats,
    )
    split = split_times(backend, audio, n, args.repeats)
    return {
        **out,
        "sampling_speedup": out[f"speedup_vs_generate_n{n}"],
        "same_tokens": out[f"same_tokens_n{n}"],
        "mean_new_tokens": out[f"mean_new_tokens_n{n}"],
        "full_clip_s": t["whole_clip"],
        "full_clip_vs_sampling": t["whole_clip"] / t["sampling"],
        "score_labels_s": t["score_labels"],
        "vote_s": t["vote"],
        "likelihood_vs_vote_speedup": t["vote"] / t["score_labels"],
        "plain_vote_s": t["plain_vote"],
        "likelihood_vs_plain_vote_speedup": t["plain_vote"] / t["score_labels"],
        "decode_s": max(0.0, t["sampling"] - split["processor_s"] - split["prefill_1_s"]),
        **split,
    }


def bench_batch(backend: Any, args: argparse.Namespace) -> dict[str, float]:
    """8 clips: one ``sample_batch`` vs eight ``sample`` calls (``sample``'s defaults:
    N = 16 answers of up to 48 tokens)."""
    params = GenerationParams(n=16, temperature=0.8, max_new_tokens=48, seed=1)
    items = [(clip_audio(i, backend.sample_rate)[0], PROMPT) for i in range(8)]
    backend.sample_batch(items, params)  # warm-up
    t = interleaved(
        {
            "batch1": fresh(backend, lambda: [backend.sample(a, p, params) for a, p in items]),
            "batch8": fresh(backend, lambda: backend.sample_batch(items, params)),
        },
        args.repeats,
    )
    return {
        "batch1_clips_per_s": 8 / t["batch1"],
        "batch8_clips_per_s": 8 / t["batch8"],
        "batch8_vs_batch1_clips_per_s": t["batch1"] / t["batch8"],
    }


def bench_expand_memory(model: str, rows: int) -> dict[str, float]:
    """Peak memory (MB) of expanding a clip's prompt cache to ``rows`` rows + one decode step.

    Each variant runs in a fresh process whose large allocations are mmap-ed
    (``MALLOC_MMAP_THRESHOLD_``), so a freed tensor leaves RSS at once and the peak RSS
    growth from just before the expansion (``VmHWM`` reset through ``clear_refs``) is
    the peak of what the expansion and the first step hold: ``deepcopy`` is the old deep
    copy + ``batch_repeat_interleave``, ``views`` is `caches.expanded`.
    """
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"}
    out = {}
    for variant in ("deepcopy", "views"):
        done = subprocess.run(
            [
                sys.executable,
                __file__,
                "--memory-probe",
                variant,
                "--model",
                model,
                "--rows",
                f"{rows}",
            ],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        )
        out[f"expand_{variant}_mb"] = float(done.stdout.split()[-1])
    return {"expand_rows": rows, **out}


def memory_probe(variant: str, model: str, rows: int) -> float:
    """One variant of `bench_expand_memory` in this (fresh) process: peak growth in MB."""
    import copy

    import torch

    from ambiscope.core.alm.backends.transformers import caches
    from ambiscope.core.alm.backends.transformers.backend import TransformersBackend

    torch.set_num_threads(1)
    backend = TransformersBackend(model, device="cpu")
    p = backend._encode(clip_audio(0, backend.sample_rate)[0], PROMPT)
    cache, _ = backend._prefill(p, p.length - 1)
    last = p.ids[:, -1:].repeat(rows, 1)
    with open("/proc/self/clear_refs", "w") as f:  # peak RSS (VmHWM) := current RSS
        f.write("5")
    before = _status_kib("VmRSS")
    if variant == "deepcopy":
        expanded = copy.deepcopy(cache)
        expanded.batch_repeat_interleave(rows)
    else:
        expanded = caches.expanded(cache, rows)
    with torch.no_grad():
        backend.lm(input_ids=last, **{backend._cache_kw: expanded}, use_cache=True)
    return (_status_kib("VmHWM") - before) / 1024


def _status_kib(field: str) -> float:
    with open("/proc/self/status") as f:
        return float(next(line for line in f if line.startswith(field + ":")).split()[1])


def bench_run_overhead(model: str, args: argparse.Namespace, workdir: Path) -> dict[str, float]:
    """Share of a real run's wall time spent outside model calls (demo workspace)."""
    from ambiscope.core.demo import DemoSpec, build_demo
    from ambiscope.core.scaling.run import RunSpec, execute_run
    from ambiscope.db import Workspace

    db = workdir / "overhead.db"
    build_demo(db, DemoSpec(n_clips=args.run_clips, seed=4))
    spec = RunSpec(
        dataset="demo",
        model=model,
        n=16,
        max_new_tokens=args.vote_tokens,
        verifier="self",
        device=args.device,
    )
    with Workspace.open(db) as ws:
        result = execute_run(ws, spec)
    return {
        "run_clips": result.processed,
        "run_s": result.seconds,
        "run_model_s": result.model_seconds,
        "outside_model_share": 1 - result.model_seconds / result.seconds,
    }


def load_backend(
    model: str | None, family: str, device: str, workdir: Path
) -> tuple[Any, str, str]:
    from ambiscope.core.alm.backends.transformers.backend import TransformersBackend

    if model is None:
        from ambiscope.core.alm.tiny import build_tiny_model

        model = str(build_tiny_model(workdir / "tiny", family=family))
        label = f"tiny {family} (ambiscope.core.alm.tiny)"
    else:
        label = model
    return TransformersBackend(model, device=device), label, model


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="checkpoint (default: a tiny model)")
    parser.add_argument("--family", default="qwen2_audio", help="tiny model's family")
    parser.add_argument("--rows", type=int, default=2048, help="rows of the memory probe")
    parser.add_argument("--memory-probe", choices=("deepcopy", "views"), help=argparse.SUPPRESS)
    parser.add_argument("--run-clips", type=int, default=8, help="clips of the run-overhead run")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--clips", type=int, default=3)
    parser.add_argument("--ns", type=int, nargs="+", default=[8, 32], help="N values")
    parser.add_argument(
        "--max-new-tokens", type=int, default=8, help="sampled answer length (label answers)"
    )
    parser.add_argument("--vote-tokens", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads", type=int, default=None, help="torch intra-op threads (default: torch's)"
    )
    args = parser.parse_args()
    if args.memory_probe:
        print(memory_probe(args.memory_probe, args.model, args.rows))
        return 0

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        backend, label, model = load_backend(args.model, args.family, args.device, Path(tmp))
        info = backend.describe()
        print(
            f"model: {label} ({info['model_type']}, {info['parameters']:,} params, "
            f"{info['device']} {info['dtype']}, torch threads {torch.get_num_threads()})"
        )
        per_clip = []
        for i in range(args.clips):
            audio, source = clip_audio(i, backend.sample_rate)
            r = bench_clip(backend, audio, args)
            per_clip.append(r)
            print(f"clip {i} ({source}, {audio.duration_s:.1f} s, {r['prompt_tokens']} tokens):")
            for n in args.ns:
                print(
                    f"  N={n}: encode-once {r[f'encode_once_n{n}_s'] * 1e3:.0f} ms, "
                    f"num_return_sequences {r[f'generate_n{n}_s'] * 1e3:.0f} ms "
                    f"({r[f'speedup_vs_generate_n{n}']:.1f}x), {n} separate calls "
                    f"{r[f'separate_calls_n{n}_s'] * 1e3:.0f} ms "
                    f"({r[f'speedup_vs_separate_n{n}']:.1f}x); same tokens: "
                    f"{bool(r[f'same_tokens_n{n}'])}"
                )
            print(
                f"  score_labels({len(LABELS)}) {r['score_labels_s'] * 1e3:.0f} ms vs vote "
                f"{r['vote_s'] * 1e3:.0f} ms ({r['likelihood_vs_vote_speedup']:.1f}x), plain "
                f"{r['plain_vote_s'] * 1e3:.0f} ms ({r['likelihood_vs_plain_vote_speedup']:.1f}x)"
                f"; sampling+verifier+likelihood {r['full_clip_vs_sampling']:.2f}x sampling"
            )
        batch = bench_batch(backend, args)
        memory = bench_expand_memory(model, args.rows)
        backend.close()
        overhead = bench_run_overhead(model, args, Path(tmp))

    keys = per_clip[0].keys()
    summary = {k: statistics.median(r[k] for r in per_clip) for k in keys}
    summary |= batch | memory | overhead
    print(
        f"8 clips: B=1 {batch['batch1_clips_per_s']:.2f} clips/s, B=8 "
        f"{batch['batch8_clips_per_s']:.2f} clips/s; cache to {memory['expand_rows']} rows + a "
        f"step: deep copy {memory['expand_deepcopy_mb']:.1f} MB, views "
        f"{memory['expand_views_mb']:.1f} MB; run of {overhead['run_clips']} clips "
        f"{overhead['run_s']:.1f} s, {overhead['outside_model_share']:.1%} outside model calls"
    )
    print(
        f"split (median): processor {summary['processor_s'] * 1e3:.0f} ms, prefill x1 "
        f"{summary['prefill_1_s'] * 1e3:.0f} ms, prefill x{max(args.ns)} "
        f"{summary['prefill_n_s'] * 1e3:.0f} ms, batched decode of "
        f"{summary['mean_new_tokens']:.0f} tokens {summary['decode_s'] * 1e3:.0f} ms"
    )
    for key, (op, target) in TARGETS.items():
        ok = summary[key] >= target if op == ">=" else summary[key] <= target
        verdict = "ok" if ok else "MISSES TARGET"
        print(f"{key:>32}: {summary[key]:.2f} (target {op} {target:g}) {verdict}")
    print(
        json.dumps(
            {
                "bench": "sampling",
                "model": label,
                "device": info["device"],
                "dtype": info["dtype"],
                "ns": args.ns,
                "max_new_tokens": args.max_new_tokens,
                "vote_tokens": args.vote_tokens,
                "clips": args.clips,
                "threads": torch.get_num_threads(),
                "median": summary,
                "per_clip": per_clip,
                "targets": TARGETS,
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
