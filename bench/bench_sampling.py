"""Benchmark encode-once sampling and label likelihood against their naive baselines.

Per clip (3 s of speech, eSpeak NG resampled to 16 kHz; noise if eSpeak is unavailable):

* **sampling**: ``TransformersBackend.sample`` with N=32 (one prefill with the audio, KV cache
  expanded to 32 rows, one batched decode) vs plain ``generate(num_return_sequences=32)``
  (prefills 32 copies, re-encoding the audio 32 times). Same GenerationConfig, same seed, and
  the bench checks that both give the same tokens. Target >= 10x.
* **likelihood vs vote**: ``score_labels`` over 6 labels (one prefill + one 6-row forward) vs
  the 32-sample label-mode vote it replaces (one-word answers: ``--vote-tokens`` new
  tokens), both the encode-once vote and the plain-generate vote. Target >= 20x.

The time split (processor, prefill, batched decode) is printed too, because the speedup is
bounded by it: encode-once costs P + D and plain generate N·P + D (P = one prefill,
D = the batched decode), so the ratio approaches N only when D << P.

Defaults to the tiny random checkpoint from ``ambiscope.core.alm.tiny`` on CPU (weights cannot be
downloaded here); pass ``--model`` for a real checkpoint (e.g. on a GPU machine).

Run: ``.venv/bin/python bench/bench_sampling.py [--model ID] [--clips 3] [--n 32]``.
Prints readable lines, then one JSON line with every number.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ambiscope.core.alm.base import AudioInput, ChatPrompt, GenerationParams
from ambiscope.core.audio import resample

TARGETS = {
    "sampling_speedup": 10.0,
    "likelihood_vs_vote_speedup": 20.0,
    "likelihood_vs_plain_vote_speedup": 20.0,
}
LABELS = ["neutral", "happy", "sad", "angry", "fearful", "disgusted"]
SENTENCES = (
    "I can't believe you did that to me again.",
    "The meeting has been moved to Thursday afternoon.",
    "Oh, that is wonderful news, thank you so much!",
)
PROMPT = ChatPrompt(
    user=(
        "Which emotion does the speaker express? Answer with exactly one word from: "
        + ", ".join(LABELS)
        + "."
    )
)


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


def best_of(fn: Callable[[], Any], repeats: int) -> tuple[Any, float]:
    """(result, fastest wall time): the minimum is the least noisy estimate on a busy box."""
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return out, min(times)


def plain_generate(backend: Any, audio: AudioInput, params: GenerationParams) -> list[list[int]]:
    """The baseline: processor + generate(num_return_sequences=N) over the full inputs."""
    import torch

    inputs = backend.build_inputs(audio, PROMPT)
    gc = backend.generation_config_for(params)
    gc.num_return_sequences = params.n
    torch.manual_seed(params.seed)
    with torch.no_grad():
        out = backend.lm.generate(**inputs, generation_config=gc)
    prompt_len = inputs["input_ids"].shape[1]
    rows = []
    for seq in out[:, prompt_len:].tolist():
        cut = next((i + 1 for i, t in enumerate(seq) if t in backend._eos_ids), len(seq))
        rows.append(seq[:cut])
    return rows


def split_times(backend: Any, audio: AudioInput, n: int, repeats: int) -> dict[str, float]:
    """Processor, one prefill, an N-row prefill (what plain generate does first)."""
    import torch

    inputs, t_proc = best_of(lambda: backend.build_inputs(audio, PROMPT), repeats)
    length = inputs["input_ids"].shape[1]
    _, t_prefill = best_of(lambda: backend._prefill(inputs, length - 1), repeats)
    big = {
        k: (v.repeat(n, *([1] * (v.dim() - 1))) if isinstance(v, torch.Tensor) else v)
        for k, v in inputs.items()
    }
    with torch.no_grad():
        _, t_prefill_n = best_of(lambda: backend.lm(**big, use_cache=True), repeats)
    return {
        "processor_s": t_proc,
        "prefill_1_s": t_prefill,
        "prefill_n_s": t_prefill_n,
        "prompt_tokens": int(length),
        "audio_tokens": int((inputs["input_ids"] == backend._audio_token_id).sum()),
    }


def bench_clip(backend: Any, audio: AudioInput, args: argparse.Namespace) -> dict[str, float]:
    params = GenerationParams(
        n=args.n, temperature=1.0, max_new_tokens=args.max_new_tokens, seed=args.seed
    )
    vote = GenerationParams(
        n=args.n, temperature=1.0, max_new_tokens=args.vote_tokens, seed=args.seed
    )
    backend.sample(audio, PROMPT, params)  # warm-up (allocator, kernels)
    cands, t_once = best_of(lambda: backend.sample(audio, PROMPT, params), args.repeats)
    ref, t_plain = best_of(lambda: plain_generate(backend, audio, params), args.repeats)
    same = [c.extra["token_ids"] for c in cands] == ref
    _, t_labels = best_of(lambda: backend.score_labels(audio, PROMPT, LABELS), args.repeats)
    _, t_vote = best_of(lambda: backend.sample(audio, PROMPT, vote), args.repeats)
    _, t_plain_vote = best_of(lambda: plain_generate(backend, audio, vote), args.repeats)
    split = split_times(backend, audio, args.n, args.repeats)
    return {
        "encode_once_s": t_once,
        "plain_generate_s": t_plain,
        "sampling_speedup": t_plain / t_once,
        "same_tokens": float(same),
        "mean_new_tokens": statistics.fmean(c.n_tokens for c in cands),
        "score_labels_s": t_labels,
        "vote_s": t_vote,
        "likelihood_vs_vote_speedup": t_vote / t_labels,
        "plain_vote_s": t_plain_vote,
        "likelihood_vs_plain_vote_speedup": t_plain_vote / t_labels,
        "decode_s": max(0.0, t_once - split["processor_s"] - split["prefill_1_s"]),
        **split,
    }


def load_backend(model: str | None, device: str, workdir: Path) -> tuple[Any, str]:
    from ambiscope.core.alm.backends.transformers.backend import TransformersBackend

    if model is None:
        from ambiscope.core.alm.tiny import build_tiny_model

        model = str(build_tiny_model(workdir / "tiny"))
        label = "tiny (ambiscope.core.alm.tiny)"
    else:
        label = model
    return TransformersBackend(model, device=device), label


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="checkpoint (default: the tiny model)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--clips", type=int, default=3)
    parser.add_argument("--n", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--vote-tokens", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads", type=int, default=None, help="torch intra-op threads (default: torch's)"
    )
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        backend, label = load_backend(args.model, args.device, Path(tmp))
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
            print(
                f"clip {i} ({source}, {audio.duration_s:.1f} s, {r['prompt_tokens']} prompt "
                f"tokens): N={args.n} encode-once {r['encode_once_s'] * 1e3:.0f} ms vs plain "
                f"generate {r['plain_generate_s'] * 1e3:.0f} ms -> "
                f"{r['sampling_speedup']:.1f}x (same tokens: {bool(r['same_tokens'])}); "
                f"score_labels({len(LABELS)}) {r['score_labels_s'] * 1e3:.0f} ms vs "
                f"{args.n}-sample vote {r['vote_s'] * 1e3:.0f} ms encode-once -> "
                f"{r['likelihood_vs_vote_speedup']:.1f}x, {r['plain_vote_s'] * 1e3:.0f} ms "
                f"plain -> {r['likelihood_vs_plain_vote_speedup']:.1f}x"
            )
        backend.close()

    keys = per_clip[0].keys()
    summary = {k: statistics.median(r[k] for r in per_clip) for k in keys}
    print(
        f"split (median): processor {summary['processor_s'] * 1e3:.0f} ms, prefill x1 "
        f"{summary['prefill_1_s'] * 1e3:.0f} ms, prefill x{args.n} "
        f"{summary['prefill_n_s'] * 1e3:.0f} ms, batched decode of "
        f"{summary['mean_new_tokens']:.0f} tokens {summary['decode_s'] * 1e3:.0f} ms"
    )
    for key, target in TARGETS.items():
        verdict = "ok" if summary[key] >= target else "BELOW TARGET"
        print(f"{key:>28}: {summary[key]:.1f}x (target >= {target:g}x) {verdict}")
    print(
        json.dumps(
            {
                "bench": "sampling",
                "model": label,
                "device": info["device"],
                "dtype": info["dtype"],
                "n": args.n,
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
