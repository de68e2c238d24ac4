"""Exports: benchmark metric tables, reports with figures, curated clip subsets.

## Exports (README section)

### `ambiscope metrics` — the benchmark table

    ambiscope metrics [--dataset D]... [--run ID]... [--strategy S]...
        [--by ambiguity|split|gender|speaker|none] [--bootstrap 1000]
        [--baseline single|none|STRATEGY] [--reference human|synthetic|combined]
        [--metrics js,bc,r2_pearson,accuracy,macro_f1|all] [--where FILTER]
        [--format table|csv|json|md|latex] [-o FILE]

One row per dataset x run x strategy x group (ambiguity level by default, then `all`):
the mean of each metric over the clips that have both a human distribution and a
prediction, its 95% bootstrap CI over clips (`<metric>_lo`, `<metric>_hi`) and a paired
bootstrap comparison with the run's baseline strategy on the same clips
(`<metric>_diff` = strategy - baseline, `<metric>_p` two-sided). The baseline defaults to
`single` (`cot` for chain-of-thought runs). `md` bolds and `latex` (`booktabs`:
`\\usepackage{booktabs}`) `\\textbf`s the best value per column within a dataset and
group; `*` marks p < 0.05. Metrics: js, js_distance, kl, bc, cosine, r2_pearson, r2_det,
ece, accuracy, tie_accuracy, macro_f1, weighted_f1, entropy_pearson, invalid_rate
(`all` for every one). With `-o FILE` a `FILE.provenance.json` is written beside it
(`json` embeds it too).

### `ambiscope report OUT_DIR` — Markdown + PNG figures (needs `pip install 'ambiscope[report]'`)

`report.md` with the benchmark table, JS/BC by ambiguity level per strategy, model vs
human entropy, reliability diagrams (ECE), confusion matrices, invalid-output rates and
N-scaling curves (the first 1, 2, 4, ... N stored candidates re-aggregated with `vote`,
`wbon`, ...; on a seeded sample of `--scaling-clips` clips), plus `figures/*.png`,
`metrics.csv`, `metrics.json` and `provenance.json`.

### `ambiscope export subset --where FILTER --format F OUT` — curated clip subsets

Options: `--dataset`, `--run ID` / `--strategy S` (which model distributions to include;
default every run and strategy; the first of each is what `js>`, `bc<`, `agree`,
`disagree` and `failed` in the filter refer to), `--link` (symlink audio instead of
copying), `--force` (replace a non-empty OUT).

- `audiofolder` (`<split>/audio/<clip key>.<ext>` + `<split>/metadata.parquet`) and
  `parquet` (`data/<split>-00000-of-00001.parquet`, audio embedded as `{bytes, path}`),
  both with a dataset card `README.md` pinning every column's type (`majority` a
  ClassLabel over the exported datasets' labels, fixed-key `human`/`distribution`
  structs, lists of strings/structs) and each split's files: `datasets.load_dataset(OUT)`
  gives a DatasetDict; `load_dataset("audiofolder", data_dir=OUT)` the same features but
  only train/validation/test folder names (see ambiscope.core.export.hf for the split
  names). Clips without an audio file are skipped and counted.
- `csv` (`clips.csv`, nested fields as JSON text) and `jsonl` (`clips.jsonl`): every
  selected clip, with or without audio (`source_path` is the original file).
- `label-studio`: `tasks.json` (every model distribution as a prediction: argmax choice,
  its probability as score, `model_version` = "run label / strategy"; `data.dataset` and
  `data.clip_id` name the clip), `labeling_config.xml` (audio, optional transcript,
  multi-choice emotions) and `README.md`, the steps for Label Studio 1.23 with this
  export's absolute paths. Task audio is `/data/local-files/?d=<path below DIR>` for
  `--ls-root DIR` (default OUT; an OUT outside DIR is refused), so one Label Studio
  started with `LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true` and
  `LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT=DIR` serves every export below DIR, once each
  project has a Local Storage for its export's `audio/` folder (404 before). Re-annotate
  with several people, export JSON and read it back with
  `ambiscope import label-studio EXPORT.json`: the votes land on the same clips (one
  Label Studio user = one annotator). Legacy API tokens answer 401 in 1.23; use a
  personal access token (`/api/token/refresh/` gives the Bearer token).

Every record has: `key`, `dataset`, `clip_id`, `split`, `speaker`, `gender`,
`transcript`, `intended_label`, `duration`, `source_path`, `human` ({label: p} or null),
`human_entropy` (bits), `human_norm_entropy`, `ambiguity`, `majority`, `n_votes`, `votes`
([{annotator, kind, label, rank, weight}]), `flags`, `tags`, `notes` ([{author, body}]),
`predictions` ([{run, run_label, model, strategy, distribution: {label: p}, label, js,
bc}]); audiofolder adds `file_name`, parquet `audio`, and both store `majority` as its
ClassLabel index.

Every export writes `provenance.json`: workspace path and schema version, the filter,
datasets (label set, votes version, human-reference options), every run with its full
configuration, ambiscope and package versions, time and counts. Exports read one
consistent snapshot (a single read transaction) even while a worker writes, write into a
temporary directory next to OUT and rename it into place, and refuse to overwrite a
non-empty directory without `--force`. File names come from clip keys with every
character outside `[A-Za-z0-9._-]` replaced, so keys like `../../etc/passwd` stay inside
OUT; clashes get `-2`, `-3`, ...

### Filter language (`--where`, shared with `sample` and the TUI)

Space-separated terms are ANDed; `-term` negates; quote values with spaces
(`tag:"needs review"`). `dataset:NAME` `split:NAME` `speaker:ID` `gender:F`;
`label:LABEL` (human majority; synonyms ok) `intended:LABEL`;
`ambiguity:low|medium|high`; `entropy>0.5` (normalised human entropy; also `<`, `>=`,
`<=`); `votes>=5`; `flag:NAME` / `flagged`; `tag:NAME` / `tagged`; `note`; `voted` (your
own vote); `audio`; `js>0.3` `bc<0.5` `disagree` `agree` (model vs human; need
`--run` and `--strategy`); `failed` (needs `--run`); `key:TEXT` or bare words (substring
of key or transcript). Example: `--where "ambiguity:high disagree -flag:bad split:test"`.
Values of `dataset:`, `split:`, `gender:`, `label:`, `intended:` and `rater:` are checked
against the workspace first: a typo is a one-line error listing the valid values.
"""

from __future__ import annotations

import importlib
from typing import Any

from ambiscope.core.registry import Registry

TABLE_FORMATS: Registry[Any] = Registry("table format", discover=("ambiscope.core.export.tables",))
"""`--format` of `ambiscope metrics`: name -> writer(table, provenance) -> text; metadata
`suffix`, the file name suffix a front end suggests (".tex" for latex).

Each writer is one function decorated with `@TABLE_FORMATS.register(name)` where it is
defined (ambiscope.core.export.tables); listing the names imports that module only."""

SUBSET_FORMATS: Registry[Any] = Registry(
    "subset format",
    discover=("ambiscope.core.export.subset", "ambiscope.core.export.label_studio"),
)
"""`--format` of `ambiscope export subset`: name -> writer(out_dir, records, labels,
options) -> messages; metadata `audio=True` when the format needs each clip's audio file
(copied into `audio/`, unless `places_audio=True`: the writer places or embeds it),
`prepare(out, options) -> options` for checks and settings before anything is read."""

_API = {
    "ExportError": "ambiscope.core.export._common",
    "TableOptions": "ambiscope.core.export.tables",
    "BenchmarkTable": "ambiscope.core.export.tables",
    "compute_benchmark": "ambiscope.core.export.tables",
    "render": "ambiscope.core.export.tables",
    "ReportOptions": "ambiscope.core.export.report",
    "build_report": "ambiscope.core.export.report",
    "SubsetOptions": "ambiscope.core.export.subset",
    "export_subset": "ambiscope.core.export.subset",
}

__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    """Lazy names, so importing the package (or the CLI) does not pull numpy in."""
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'ambiscope.core.export' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
