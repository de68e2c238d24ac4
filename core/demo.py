"""The built-in demo workspace: synthetic speech with simulated annotator pools.

Researchers (and the test-suite) need a workspace that exercises everything without a
licence-gated corpus: real WAV files, several speakers and splits, and vote tables that
range from unanimous to split so all three ambiguity levels occur. Speech comes from
eSpeak NG with prosody standing in for emotion (core/speech.py); votes come from
simulated raters drawing labels from a per-clip *perceived* distribution:

- clear clips: most mass on the intended emotion;
- mixed clips: the intended emotion plus a commonly confused neighbour (angry/disgust,
  fear/sad, sad/neutral, ...), as crowd-sourced CREMA-D votes often look;
- split clips: several emotions nearly tied.

Each rater also has a reliability (how often they answer at random), and some raters
add a secondary label, like IEMOCAP/MSP-Podcast evaluators do.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ambiscope.core.audio import resample, write_wav
from ambiscope.core.reference.human import refresh_human
from ambiscope.core.scaling.run import RunSpec
from ambiscope.core.speech import EMOTION_PROSODY, Prosody, synthesize
from ambiscope.core.stats import dataset_stats, format_dataset
from ambiscope.db import ClipIn, VoteIn, Workspace

DEMO_DATASET = "demo"
DEMO_LABELS: tuple[str, ...] = ("neutral", "happy", "sad", "angry", "fear", "disgust")

# CREMA-D's twelve stimulus sentences: emotionally neutral text, so only prosody varies.
SENTENCES: dict[str, str] = {
    "IEO": "It's eleven o'clock.",
    "TIE": "That is exactly what happened.",
    "IOM": "I'm on my way to the meeting.",
    "IWW": "I wonder what this is about.",
    "TAI": "The airplane is almost full.",
    "MTI": "Maybe tomorrow it will be cold.",
    "IWL": "I would like a new alarm clock.",
    "ITH": "I think I have a doctor's appointment.",
    "DFA": "Don't forget a jacket.",
    "ITS": "I think I've seen this before.",
    "TSI": "The surface is slick.",
    "WSI": "We'll stop in a couple of minutes.",
}

# (speaker id, eSpeak voice, gender, split)
SPEAKERS: tuple[tuple[str, str, str, str], ...] = (
    ("spk1", "en-us", "M", "train"),
    ("spk2", "en-us+f3", "F", "train"),
    ("spk3", "en-gb", "M", "validation"),
    ("spk4", "en-us+f4", "F", "test"),
)

CONFUSABLE: dict[str, str] = {
    "neutral": "sad",
    "happy": "neutral",
    "sad": "neutral",
    "angry": "disgust",
    "fear": "sad",
    "disgust": "angry",
}

INTENSITY = {"LO": 0.5, "MD": 0.8, "HI": 1.0}
PROFILES = ("clear", "mixed", "split")
N_RATERS_POOL = 12


@dataclass(frozen=True)
class DemoSpec:
    n_clips: int = 60
    seed: int = 7
    sample_rate: int = 16_000
    min_raters: int = 3
    max_raters: int = 12

    def __post_init__(self) -> None:
        if not 1 <= self.n_clips <= 5000:
            raise ValueError(f"demo clips must be between 1 and 5000, got {self.n_clips}")
        if not 1 <= self.min_raters <= self.max_raters <= N_RATERS_POOL:
            raise ValueError(f"raters per clip must lie within 1..{N_RATERS_POOL}")


@dataclass(frozen=True)
class DemoSummary:
    workspace: Path
    audio_dir: Path
    built: bool
    seconds: float
    stats: dict[str, Any]


def audio_dir_for(db_path: Path) -> Path:
    """Demo audio lives next to the workspace file: `<dir>/<stem>-audio/`."""
    return db_path.parent / f"{db_path.stem}-audio"


def blend_prosody(emotion: str, intensity: float) -> Prosody:
    """Move from neutral prosody towards the emotion's by `intensity` in [0, 1]."""
    base, target = EMOTION_PROSODY["neutral"], EMOTION_PROSODY[emotion]

    def mix(a: int, b: int) -> int:
        return round(a + intensity * (b - a))

    return Prosody(
        rate=mix(base.rate, target.rate),
        pitch=mix(base.pitch, target.pitch),
        pitch_range=mix(base.pitch_range, target.pitch_range),
        volume=mix(base.volume, target.volume),
        word_gap=mix(base.word_gap, target.word_gap),
    )


def perceived_distribution(emotion: str, profile: str, rng: np.random.Generator) -> np.ndarray:
    """The distribution simulated raters draw from (see module docstring)."""
    k = len(DEMO_LABELS)
    i = DEMO_LABELS.index(emotion)
    j = DEMO_LABELS.index(CONFUSABLE[emotion])
    p = np.full(k, 0.02)
    if profile == "clear":
        p[i] = 0.9
    elif profile == "mixed":
        p[i], p[j] = 0.55, 0.35
    else:
        others = [x for x in range(k) if x not in (i, j)]
        p[i], p[j], p[rng.choice(others)] = 0.32, 0.3, 0.28
    return p / p.sum()


def _plan(spec: DemoSpec, rng: np.random.Generator) -> list[dict[str, Any]]:
    """Decide every clip's speaker, sentence, emotion, intensity and ambiguity profile."""
    emotions = [DEMO_LABELS[i % len(DEMO_LABELS)] for i in range(spec.n_clips)]
    profiles = [PROFILES[i % len(PROFILES)] for i in range(spec.n_clips)]
    rng.shuffle(emotions)
    rng.shuffle(profiles)
    sentences = list(SENTENCES)
    plan = []
    for n in range(spec.n_clips):
        speaker = SPEAKERS[n % len(SPEAKERS)]
        level = list(INTENSITY)[int(rng.integers(len(INTENSITY)))]
        sentence = sentences[int(rng.integers(len(sentences)))]
        emotion = emotions[n]
        key = f"{speaker[0]}_{n:03d}_{sentence}_{emotion[:3].upper()}_{level}"
        plan.append(
            {
                "key": key,
                "speaker": speaker,
                "sentence": sentence,
                "emotion": emotion,
                "level": level,
                "profile": profiles[n],
            }
        )
    return plan


def _synthesise(item: dict[str, Any], audio_dir: Path, sample_rate: int) -> tuple[str, float]:
    prosody = blend_prosody(item["emotion"], INTENSITY[item["level"]])
    samples, sr = synthesize(
        SENTENCES[item["sentence"]], voice=item["speaker"][1], **prosody.as_kwargs()
    )
    audio = resample(samples.astype(np.float32) / 32768.0, sr, sample_rate)
    relative = f"{item['key']}.wav"
    write_wav(audio_dir / relative, audio, sample_rate)
    item["prosody"] = prosody.as_kwargs()
    return relative, len(audio) / sample_rate


def _simulate_votes(
    item: dict[str, Any], spec: DemoSpec, rng: np.random.Generator, reliability: np.ndarray
) -> list[tuple[str, str, int]]:
    """(rater, label, rank) votes for one clip."""
    p = perceived_distribution(item["emotion"], item["profile"], rng)
    n = int(rng.integers(spec.min_raters, spec.max_raters + 1))
    raters = rng.choice(N_RATERS_POOL, size=n, replace=False)
    votes = []
    for r in raters:
        if rng.random() < reliability[r]:
            primary = int(rng.choice(len(DEMO_LABELS), p=p))
        else:
            primary = int(rng.integers(len(DEMO_LABELS)))
        rater = f"demo-r{r + 1:02d}"
        votes.append((rater, DEMO_LABELS[primary], 0))
        if rng.random() < 0.15:
            rest = p.copy()
            rest[primary] = 0
            votes.append((rater, DEMO_LABELS[int(rng.choice(len(rest), p=rest / rest.sum()))], 1))
    return votes


def build_demo(
    db_path: str | Path, spec: DemoSpec | None = None, *, force: bool = False
) -> DemoSummary:
    """Create (or with force, rebuild) the demo dataset in the workspace at `db_path`.

    Audio is written first (atomically, file by file); all rows then go in one transaction,
    so an interrupted build never leaves a half-populated dataset.
    """
    spec = spec or DemoSpec()
    started = time.perf_counter()
    path = Path(db_path)
    audio_dir = audio_dir_for(path)
    with Workspace.open(path, create=True) as ws:
        existing = ws.find_dataset(DEMO_DATASET)
        if existing is not None and not force:
            stats = dataset_stats(ws, existing)
            return DemoSummary(path, audio_dir, False, time.perf_counter() - started, stats)
        rng = np.random.default_rng(spec.seed)
        plan = _plan(spec, rng)
        reliability = rng.uniform(0.6, 0.95, size=N_RATERS_POOL)
        clips, votes = [], []
        for item in plan:
            relative, duration = _synthesise(item, audio_dir, spec.sample_rate)
            speaker_id, voice, gender, split = item["speaker"]
            clips.append(
                ClipIn(
                    key=item["key"],
                    path=relative,
                    duration=round(duration, 3),
                    sample_rate=spec.sample_rate,
                    speaker=speaker_id,
                    gender=gender,
                    split=split,
                    transcript=SENTENCES[item["sentence"]],
                    intended_label=item["emotion"],
                    meta={
                        "sentence": item["sentence"],
                        "intensity": item["level"],
                        "profile": item["profile"],
                        "voice": voice,
                        "prosody": item["prosody"],
                    },
                )
            )
            votes += [(item["key"], *v) for v in _simulate_votes(item, spec, rng, reliability)]
        with ws.transaction():
            if existing is not None:
                ws.delete_dataset(existing.id)
            ds = ws.add_dataset(
                DEMO_DATASET,
                "demo",
                DEMO_LABELS,
                root=str(audio_dir.resolve()),
                options={"seed": spec.seed, "n_clips": spec.n_clips, "generator": "espeak-ng"},
            )
            ws.add_clips(ds.id, clips)
            ids = ws.clip_ids(ds.id)
            raters = ws.ensure_annotators(ds.id, sorted({(v[1], "human") for v in votes}))
            ws.add_votes(
                ds.id,
                (VoteIn(ids[key], raters[rater], label, rank) for key, rater, label, rank in votes),
            )
        refresh_human(ws, ds)
        stats = dataset_stats(ws, ds)
    return DemoSummary(path, audio_dir, True, time.perf_counter() - started, stats)


def demo_run_spec(model_dir: Path, n: int = 8) -> RunSpec:
    """The run `ambiscope demo` samples: the tiny model, every strategy, short answers."""
    return RunSpec(
        dataset=DEMO_DATASET,
        model=str(model_dir),
        n=n,
        max_new_tokens=8,
        verifier="self",
        seed=0,
        name="tiny-demo",
    )


def format_summary(summary: DemoSummary) -> str:
    verb = "built" if summary.built else "already present (use --force to rebuild)"
    head = (
        f"demo workspace {summary.workspace} {verb} in {summary.seconds:.1f} s; "
        f"audio in {summary.audio_dir}"
    )
    tail = f"next: AMBISCOPE_DB={summary.workspace} ambiscope stats"
    return "\n".join([head, "", format_dataset(summary.stats), "", tail])
