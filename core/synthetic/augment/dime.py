"""DiME-Aug: balance a training split by mixing neighbouring clips (audio, text, distribution).

Zhang et al. counter class imbalance in emotion corpora without throwing away the soft
labels: a new example is a convex mix of a minority-class clip and one of its nearest
neighbours, with the SAME mixing weight applied to the waveforms and to the emotion
distributions, so the augmented example carries a plausible ambiguous label rather than a
hard one. This module implements it over a workspace split and writes a training set.

Exactly what is done (`ambiscope augment dime`):

Every step that the official code (Zhang et al., ``model_finetuning/train.py``) does
differently is a convention (`ambiscope.core.conventions`, ``dime_*`` fields; the
``scaling-ambiguity`` preset takes the official choice, named second below):

1. Clips of the chosen split with an audio file and a valid reference distribution
   (`--reference human|synthetic|combined`, human by default, built under the
   conventions) are counted by their dominant label, ``dime_dominant``:
   ``primary-majority`` = the reference's majority label (plurality of primary votes,
   ties to the first label of the label set); ``argmax`` = the argmax of the clip's
   distribution (ties to the first label).
2. Targets, ``dime_target``: majority = the largest class count; every class with count
   n_c below target = ceil (``ceil``) or floor (``floor``, the official ``int()``) of
   ratio * majority gets target - n_c new clips; classes at or above the target get
   nothing (nothing is ever removed). A class needs at least 2 clips to be mixed (a
   warning names classes with fewer).
3. Neighbours, ``dime_k`` (k, the clip itself counted, so k - 1 real neighbours, as the
   official ``kneighbors(...)[1:]``) and ``dime_features``: ``ambiscope`` = the 70-dim
   hand-crafted audio vector of `features.py` (MFCC, chroma, spectral contrast, ZCR,
   roll-off, centroid, RMS; means and SDs), standardised over the clips of all classes
   being topped up; ``librosa-lexical`` = the official 72 librosa audio + 10 lexical
   transcript features (`librosa_features.py`), standardised per class (the official
   StandardScaler is fitted on each class alone). Only the classes being topped up are
   ever decoded. The nearest neighbours (Euclidean) are searched among the clips of the
   SAME split and the SAME dominant class. Same class because the
   new clip must count for the class it tops up: if two distributions share their argmax,
   every convex mix of them has that argmax too, so a neighbour from the same class
   guarantees the balance target, while the mixed distribution still inherits the
   neighbour's secondary emotions. Same split because a held-out clip must never leak
   into training data.
4. Mixing, ``dime_source``: a1 either cycles through the class's clips in a seeded
   random order (``cyclic``: sources are used evenly) or is drawn at random with
   replacement for every new clip (``random``, seeded); a2 is one of a1's neighbours at
   random, alpha ~ U(0, 1);
   audio = (1 - alpha) a1 + alpha a2 at a1's sample rate (a2 resampled if needed),
   truncated to the shorter clip; transcript = a1's if alpha < 0.5 else a2's (the source
   that dominates the mix); distribution = (1 - alpha) P1 + alpha P2, renormalised.
5. Output (an audiofolder, `datasets.load_dataset("audiofolder", data_dir=OUT)`):
   `audio/*.wav` (originals copied unchanged, augmented clips as 16-bit WAV),
   `metadata.jsonl` with one record per clip: file_name, key, dataset, split, transcript,
   label (dominant label), distribution {label: p}, augmented, sources (source clip keys),
   alpha (null for originals); and `provenance.json`. The original clips of the split are
   included (augmented: false) so OUT is a complete, balanced training set; clips of any
   other split are not. Writing is atomic; a non-empty OUT needs --force.

Test splits are refused outright (any split whose name starts with "test"), and only
clips of the chosen split are ever read.
"""

from __future__ import annotations

import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ambiscope.core.audio import AudioError, audio_info, load_audio, write_wav
from ambiscope.core.conventions import Conventions
from ambiscope.core.export._common import (
    ExportError,
    NameAllocator,
    Protected,
    atomic_dir,
    check_target_dir,
    dumps,
    safe_suffix,
)
from ambiscope.core.export.provenance import PROVENANCE_FILE, build_provenance
from ambiscope.core.paths import RootGuard, allows_outside_root
from ambiscope.core.reference import reference_name
from ambiscope.core.reference.human import human_options, load_human
from ambiscope.core.reference.pooled import load_reference
from ambiscope.core.synthetic.augment import librosa_features
from ambiscope.core.synthetic.augment.features import (
    FEATURE_SR,
    clip_features,
    nearest_neighbours,
    standardize,
)
from ambiscope.core.synthetic.spec import is_synthetic_run
from ambiscope.db import Clip, Dataset, Workspace

AUDIO_DIR = "audio"
METADATA = "metadata.jsonl"


def is_held_out(split: str | None) -> bool:
    """Test splits (`test`, `test1`, `Test-clean`, ...) are never augmented nor read."""
    return bool(split) and str(split).strip().lower().startswith("test")


@dataclass(frozen=True)
class DimeOptions:
    """What to augment and how; ``k`` (when given) overrides ``conventions.dime_k``."""

    split: str = "train"
    target_ratio: float = 0.3
    k: int | None = None
    seed: int = 0
    reference: str = "human"
    force: bool = False
    conventions: Conventions = field(default_factory=Conventions)

    def __post_init__(self) -> None:
        if is_held_out(self.split):
            raise ExportError(
                f"--split {self.split!r}: refusing to augment a test split (held-out data "
                "must stay untouched); augment the training split instead"
            )
        if not self.split or not self.split.strip():
            raise ExportError("--split must name a split (e.g. train)")
        if not 0 < self.target_ratio <= 1:
            raise ExportError(f"--target-ratio must be in (0, 1], got {self.target_ratio}")
        if self.neighbours < 2:
            raise ExportError(
                f"--k (dime_k) must be >= 2: the clip itself is one of the k, got {self.neighbours}"
            )
        reference_name(self.reference)
        if self.conventions.dime_features == "librosa-lexical":
            librosa_features.load_librosa()  # fail before any audio is decoded

    @property
    def neighbours(self) -> int:
        """k of the neighbour search, the clip itself included."""
        return self.conventions.dime_k if self.k is None else self.k


@dataclass(frozen=True)
class Mix:
    """One planned augmented clip: sources (indices into the split's clips) and alpha."""

    label: int
    first: int
    second: int
    alpha: float


@dataclass
class DimeResult:
    out: Path
    labels: tuple[str, ...]
    before: dict[str, int]
    after: dict[str, int]
    target: int
    added: int
    skipped: dict[str, int]
    provenance: dict[str, Any]
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        rows = [
            f"DiME-Aug wrote {sum(self.after.values())} clips ({self.added} augmented) to "
            f"{self.out}; target per class {self.target}",
            f"{'label':<12} {'before':>7} {'after':>7}",
        ]
        rows += [
            f"{label:<12} {self.before.get(label, 0):>7} {self.after.get(label, 0):>7}"
            for label in self.labels
            if self.before.get(label) or self.after.get(label)
        ]
        skipped = [f"{n} {why}" for why, n in self.skipped.items() if n]
        if skipped:
            rows.append(f"skipped: {', '.join(skipped)}")
        return "\n".join([*rows, *(f"warning: {w}" for w in self.warnings)])


# ------------------------------------------------------------------------ pure parts
def class_targets(counts: np.ndarray, ratio: float, rule: str = "ceil") -> tuple[int, np.ndarray]:
    """(target, clips to add per class): target = ceil (or, ``rule="floor"``, floor) of
    ratio * max count, classes below it are topped up to it; absent classes (count 0) get
    nothing (nothing to mix from). ``floor`` truncates the float product exactly as the
    official ``int(max_count * ratio)``; ``ceil`` forgives 1e-9 so 0.3 * 10 stays 3."""
    counts = np.asarray(counts, dtype=np.int64)
    if not counts.size or counts.max() == 0:
        return 0, np.zeros_like(counts)
    scaled = int(counts.max()) * ratio
    target = int(scaled) if rule == "floor" else math.ceil(scaled - 1e-9)
    need = np.where(counts > 0, np.maximum(0, target - counts), 0)
    return target, need


def mix_audio(a1: np.ndarray, a2: np.ndarray, alpha: float) -> np.ndarray:
    """(1 - alpha) a1 + alpha a2 over the shorter length (float64)."""
    n = min(len(a1), len(a2))
    return (1.0 - alpha) * np.asarray(a1[:n], dtype=np.float64) + alpha * np.asarray(
        a2[:n], dtype=np.float64
    )


def mix_distribution(p1: np.ndarray, p2: np.ndarray, alpha: float) -> np.ndarray:
    """(1 - alpha) P1 + alpha P2, renormalised to sum 1."""
    mixed = (1.0 - alpha) * np.asarray(p1, dtype=np.float64) + alpha * np.asarray(p2, np.float64)
    return mixed / mixed.sum()


def dominant_labels(dists: np.ndarray, majority: np.ndarray, rule: str) -> np.ndarray:
    """Each clip's class: the reference's primary-vote majority, or (``rule="argmax"``) the
    argmax of its distribution (ties to the first label)."""
    if rule == "argmax":
        return np.argmax(np.asarray(dists, dtype=np.float64), axis=1).astype(np.int64)
    return np.asarray(majority, dtype=np.int64)


def plan_mixes(
    labels: np.ndarray,
    need: np.ndarray,
    neighbours: list[list[int]],
    rng: np.random.Generator,
    source: str = "cyclic",
) -> list[Mix]:
    """Pick (a1, a2, alpha) for every clip to add (module docstring, step 4)."""
    mixes: list[Mix] = []
    for c in np.flatnonzero(need > 0):
        members = np.flatnonzero(labels == c)
        usable = [int(i) for i in rng.permutation(members) if neighbours[int(i)]]
        if not usable:
            continue
        for j in range(int(need[c])):
            pick = int(rng.integers(len(usable))) if source == "random" else j % len(usable)
            first = usable[pick]
            options = neighbours[first]
            second = options[int(rng.integers(len(options)))]
            mixes.append(Mix(int(c), first, second, float(rng.uniform(0.0, 1.0))))
    return mixes


# ------------------------------------------------------------------------ reading
@dataclass(frozen=True, eq=False)
class _Split:
    clips: list[Clip]
    paths: list[Path]
    dists: np.ndarray
    labels: np.ndarray
    skipped: dict[str, int]


def _read_split(ws: Workspace, ds: Dataset, opts: DimeOptions) -> _Split:
    """The split's clips that have audio and a reference distribution (never other splits)."""
    rows = ws.conn.execute(
        f"SELECT {Clip.COLUMNS} FROM clips WHERE dataset_id = ? AND split = ? ORDER BY id",
        (ds.id, opts.split),
    ).fetchall()
    if not rows:
        splits = [
            r[0]
            for r in ws.conn.execute(
                "SELECT DISTINCT split FROM clips WHERE dataset_id = ? AND split IS NOT NULL "
                "ORDER BY split",
                (ds.id,),
            )
            if not is_held_out(r[0])
        ]
        raise ExportError(
            f"no clips in split {opts.split!r} of {ds.name!r} "
            f"(splits you can augment: {', '.join(splits) or 'none'})"
        )
    conv = opts.conventions
    human = load_human(ws, ds, human_options(conv, ds))
    reference = load_reference(ws, ds, opts.reference, human=human)
    index = {int(c): i for i, c in enumerate(reference.clip_ids)}
    clips, paths, dists, majority = [], [], [], []
    skipped = {
        "without audio": 0,
        "with a missing audio file": 0,
        "with audio outside the dataset root": 0,
        "whose file is not readable audio": 0,
        "without votes": 0,
    }
    guard = RootGuard(ds.root, allow_outside=allows_outside_root(ds.options))
    for clip in map(Clip.from_row, rows):
        path = guard.full(clip.path) if clip.path else None
        row = index.get(clip.id)
        if path is None:
            skipped["without audio"] += 1
        elif not guard.allowed(path):  # a hand-edited workspace: never read it
            skipped["with audio outside the dataset root"] += 1
        elif not path.is_file():
            skipped["with a missing audio file"] += 1
        elif not _readable(path):
            skipped["whose file is not readable audio"] += 1
        elif row is None or not reference.valid[row] or reference.majority[row] < 0:
            skipped["without votes"] += 1
        else:
            clips.append(clip)
            paths.append(path)
            dists.append(reference.dist[row])
            majority.append(int(reference.majority[row]))
    if not clips:
        raise ExportError(f"split {opts.split!r} has no clip with audio and {opts.reference} votes")
    labels = dominant_labels(np.array(dists), np.array(majority), conv.dime_dominant)
    return _Split(clips, paths, np.array(dists), labels, skipped)


def _readable(path: Path) -> bool:
    """Whether soundfile can open the file (only audio is ever copied into the output)."""
    try:
        audio_info(path)
    except AudioError:
        return False
    return True


def _features(split: _Split, rows: np.ndarray, kind: str) -> np.ndarray:
    """Feature vectors of the split's clips at ``rows`` (``dime_features``: the hand-written
    70 audio features, or the official 72 librosa audio + 10 lexical ones)."""
    out = []
    for i in rows:
        if kind == "librosa-lexical":
            loaded = load_audio(split.paths[i])  # native rate: resampled by soxr, as theirs
            transcript = split.clips[i].transcript
            out.append(
                librosa_features.clip_features(loaded.samples, loaded.sample_rate, transcript)
            )
        else:
            loaded = load_audio(split.paths[i], FEATURE_SR)
            out.append(clip_features(loaded.samples, loaded.sample_rate))
    return np.array(out)


def class_neighbours(X: np.ndarray, groups: np.ndarray, k: int, per_class: bool) -> list[list[int]]:
    """For each row, its k - 1 nearest rows of the same group (k counts the row itself, as
    the official ``kneighbors(...)[1:]``), on z-scores taken over all rows or, with
    ``per_class``, over each group's rows alone (the official StandardScaler per class)."""
    data = np.asarray(X, dtype=np.float64)
    if per_class:
        Z = np.empty_like(data)
        for g in np.unique(groups):
            members = groups == g
            Z[members] = standardize(data[members])[0]
    else:
        Z = standardize(data)[0]
    return nearest_neighbours(Z, k - 1, groups=groups)


def _class_neighbours(
    split: _Split, classes: np.ndarray, conv: Conventions, k: int
) -> list[list[int]]:
    """The k - 1 nearest same-class neighbours (k counts the clip itself) of every clip of
    the classes to top up ([] for others).

    Neighbours never cross classes, so only those classes' clips are loaded and featurised:
    on a large corpus the majority classes (most of the audio) are never decoded.
    """
    rows = np.flatnonzero(classes[split.labels])
    out: list[list[int]] = [[] for _ in split.clips]
    if not len(rows):
        return out
    X = _features(split, rows, conv.dime_features)
    per_class = conv.dime_features == "librosa-lexical"
    for local, nn in enumerate(class_neighbours(X, split.labels[rows], k, per_class)):
        out[int(rows[local])] = [int(rows[j]) for j in nn]
    return out


# ------------------------------------------------------------------------ writing
def _record(
    ds: Dataset,
    file_name: str,
    key: str,
    split: str,
    transcript: str | None,
    dist: np.ndarray,
    **extra: Any,
) -> dict[str, Any]:
    labels = ds.label_set
    return {
        "file_name": file_name,
        "key": key,
        "dataset": ds.name,
        "split": split,
        "transcript": transcript,
        "label": labels[int(np.argmax(dist))],
        "distribution": {lab: round(float(p), 6) for lab, p in zip(labels, dist, strict=True)},
        **extra,
    }


def _write_originals(
    tmp: Path, ds: Dataset, split: _Split, names: NameAllocator
) -> list[dict[str, Any]]:
    records = []
    for clip, path, dist, label in zip(
        split.clips, split.paths, split.dists, split.labels, strict=True
    ):
        name = names.allocate(clip.key, safe_suffix(str(path)))
        shutil.copyfile(path, tmp / AUDIO_DIR / name)
        record = _record(
            ds,
            f"{AUDIO_DIR}/{name}",
            clip.key,
            clip.split or "",
            clip.transcript,
            dist,
            augmented=False,
            sources=[clip.key],
            alpha=None,
        )
        record["label"] = ds.label_set[int(label)]
        records.append(record)
    return records


def _write_mix(
    tmp: Path, ds: Dataset, split: _Split, mix: Mix, number: int, names: NameAllocator
) -> dict[str, Any]:
    c1, c2 = split.clips[mix.first], split.clips[mix.second]
    a1 = load_audio(split.paths[mix.first])
    a2 = load_audio(split.paths[mix.second], a1.sample_rate)
    label = ds.label_set[mix.label]
    key = f"dime-{label}-{number:05d}"
    name = names.allocate(key, ".wav")
    write_wav(tmp / AUDIO_DIR / name, mix_audio(a1.samples, a2.samples, mix.alpha), a1.sample_rate)
    dist = mix_distribution(split.dists[mix.first], split.dists[mix.second], mix.alpha)
    transcript = c1.transcript if mix.alpha < 0.5 else c2.transcript
    record = _record(
        ds,
        f"{AUDIO_DIR}/{name}",
        key,
        c1.split or "",
        transcript,
        dist,
        augmented=True,
        sources=[c1.key, c2.key],
        alpha=round(mix.alpha, 6),
    )
    record["label"] = label  # the class it tops up (equals the mix's argmax, see docstring)
    return record


def dime_augment(
    ws: Workspace, dataset: str | int, out: str | Path, opts: DimeOptions
) -> DimeResult:
    """Balance `opts.split` of a dataset by DiME-Aug and write it to `out` (see module doc)."""
    started = time.perf_counter()
    out = Path(out)
    protect = Protected.of(ws)
    check_target_dir(out, force=opts.force, protect=protect)
    ds = ws.get_dataset(dataset)
    split = _read_split(ws, ds, opts)
    k_labels = ds.k
    conv = opts.conventions
    counts = np.bincount(split.labels, minlength=k_labels)
    target, need = class_targets(counts, opts.target_ratio, conv.dime_target)
    warnings = [
        f"class {ds.label_set[c]!r} has 1 clip in {opts.split!r}: at least 2 are needed to mix"
        for c in np.flatnonzero((need > 0) & (counts < 2))
    ]
    neighbours = _class_neighbours(split, (need > 0) & (counts >= 2), conv, opts.neighbours)
    rng = np.random.default_rng(opts.seed)
    mixes = plan_mixes(split.labels, need, neighbours, rng, conv.dime_source)
    names = NameAllocator()
    with atomic_dir(out, force=opts.force, protect=protect) as tmp:
        (tmp / AUDIO_DIR).mkdir()
        records = _write_originals(tmp, ds, split, names)
        records += [_write_mix(tmp, ds, split, m, i + 1, names) for i, m in enumerate(mixes)]
        (tmp / METADATA).write_text(
            "".join(dumps(r, indent=None) + "\n" for r in records), encoding="utf-8"
        )
        after = np.bincount([m.label for m in mixes], minlength=k_labels) + counts
        before_d = _by_label(ds, counts)
        after_d = _by_label(ds, after)
        provenance = _provenance(ws, ds, opts, before_d, after_d, target, len(mixes), split)
        provenance["seconds"] = round(time.perf_counter() - started, 3)
        (tmp / PROVENANCE_FILE).write_text(dumps(provenance) + "\n", encoding="utf-8")
    return DimeResult(
        out,
        ds.label_set,
        before_d,
        after_d,
        target,
        len(mixes),
        split.skipped,
        provenance,
        warnings,
    )


_FEATURES_TEXT = {
    "ambiscope": "ambiscope.core.synthetic.augment.features (70 dims: MFCC, chroma, "
    "contrast, ZCR, roll-off, centroid, RMS; mean and SD over frames), standardised over "
    "the classes topped up",
    "librosa-lexical": "ambiscope.core.synthetic.augment.librosa_features (72 librosa "
    "audio dims + 10 lexical transcript dims, as the official DiME-Aug), standardised "
    "per class",
}


def _librosa_version(conv: Conventions) -> dict[str, str]:
    """The librosa version when its features were used (they change across releases)."""
    if conv.dime_features != "librosa-lexical":
        return {}
    return {"librosa": librosa_features.librosa_version()}


def _by_label(ds: Dataset, counts: np.ndarray) -> dict[str, int]:
    return {label: int(n) for label, n in zip(ds.label_set, counts, strict=True) if n}


def _provenance(
    ws: Workspace,
    ds: Dataset,
    opts: DimeOptions,
    before: dict[str, int],
    after: dict[str, int],
    target: int,
    added: int,
    split: _Split,
) -> dict[str, Any]:
    runs = [r for r in ws.runs(ds.id) if is_synthetic_run(r)] if opts.reference != "human" else []
    conv = opts.conventions
    return build_provenance(
        ws,
        conventions=conv,
        export="augment/dime",
        datasets=[ds],
        runs=runs,
        filter_text=f"split:{opts.split}",
        options={
            "method": "DiME-Aug",
            "split": opts.split,
            "target_ratio": opts.target_ratio,
            "target_rule": f"{conv.dime_target}(target_ratio * majority class count)",
            "k": opts.neighbours,
            "neighbours": "the k - 1 nearest other clips (k counts the clip itself); same "
            "split and same dominant label",
            "features": _FEATURES_TEXT[conv.dime_features],
            "dominant": conv.dime_dominant,
            "source": conv.dime_source,
            "alpha": "U(0, 1) per augmented clip",
            "seed": opts.seed,
            "reference": opts.reference,
            **_librosa_version(conv),
        },
        counts={
            "before": before,
            "after": after,
            "target": target,
            "augmented": added,
            "originals": len(split.clips),
            "skipped": split.skipped,
        },
    )
