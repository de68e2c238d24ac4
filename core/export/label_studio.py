"""The Label Studio subset export: `tasks.json`, `labeling_config.xml` and `README.md`.

Tasks carry `data.dataset` and `data.clip_id` so an annotated export read back with
`ambiscope import label-studio` lands on the same clips; every model distribution of the
selection becomes a prediction (argmax choice, its probability as score,
`model_version` = "run label / strategy").

Why a document root (`ls_root`): Label Studio serves a task's `/data/local-files/?d=PATH`
as LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT/PATH, and only when a Local Storage of the
project covers the file's folder (io_storages/localfiles/views.py, `localfiles_data`).
Audio paths relative to OUT would tie one running instance to one export; paths relative
to a root the user picks let one instance serve every export placed under it. The path
is quoted with `urllib.parse.quote`, as Label Studio itself writes these URLs
(io_storages/localfiles/models.py), and the view reads it back with Django's query
decoding, so spaces, `+` and non-ASCII names survive.

The README written beside the tasks spells out the steps for the Label Studio version
checked (`LS_VERSION`), with this export's absolute paths filled in, because the URLs
answer 404 until serving is enabled and the Local Storage is attached.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path, PurePath
from typing import Any
from urllib.parse import quote
from xml.sax.saxutils import quoteattr

from ambiscope.core.export import SUBSET_FORMATS
from ambiscope.core.export._common import ExportError, dumps
from ambiscope.core.export.subset import AUDIO_DIR, SubsetOptions

LS_TASKS = "tasks.json"
LS_CONFIG = "labeling_config.xml"
LS_README = "README.md"
LS_URL_PREFIX = "/data/local-files/?d="
LS_VERSION = "1.23"  # the steps in README.md were checked against Label Studio 1.23.2


def labeling_config(labels: Sequence[str], *, transcript: bool) -> str:
    """Label Studio config: audio, several emotions may be chosen, transcript if any."""
    choices = "\n".join(f"    <Choice value={quoteattr(label)}/>" for label in labels)
    text = '  <Text name="transcript" value="$transcript"/>\n' if transcript else ""
    return (
        "<View>\n"
        '  <Audio name="audio" value="$audio"/>\n'
        f"{text}"
        '  <Choices name="emotion" toName="audio" choice="multiple" showInline="true">\n'
        f"{choices}\n"
        "  </Choices>\n"
        "</View>\n"
    )


# ------------------------------------------------------------------ document root
def _relative(out: Path, root: Path) -> PurePath | None:
    """OUT below ROOT (or ROOT itself), else None.

    Compared as written first (what Label Studio's `safe_join` does with the document
    root), then with symlinks resolved (ROOT or OUT named through a symlink).
    """
    written = (Path(os.path.abspath(out)), Path(os.path.abspath(root)))
    for a, b in (written, (out.resolve(), root.resolve())):
        if a.is_relative_to(b):
            return a.relative_to(b)
    return None


def resolve_ls_root(out: Path, opts: SubsetOptions) -> SubsetOptions:
    """Check `--ls-root` against OUT before anything is read or written; fill in the paths.

    Returns the options with `extra` = {"ls_root": the absolute document root (OUT when
    none was given), "ls_out": OUT relative to it, POSIX form, "" for OUT itself}, which
    the writer turns into URLs and README paths and provenance records.
    """
    given = opts.extra.get("ls_root")
    root = Path(os.path.abspath(given if given else out))
    if given and not root.is_dir():
        raise ExportError(f"--ls-root {given}: not a directory")
    rel = _relative(Path(out), root)
    if rel is None:
        raise ExportError(
            f"{out}: not inside --ls-root {given}; Label Studio serves only files below "
            "its document root, put OUT inside it"
        )
    ls_out = "" if rel == PurePath() else rel.as_posix()
    extra = {**opts.extra, "ls_root": str(root), "ls_out": ls_out}
    return dataclasses.replace(opts, extra=extra)


def _under_root(opts: SubsetOptions, file_name: str) -> str:
    """A file of the export as a POSIX path below the document root."""
    base = opts.extra["ls_out"]
    return f"{base}/{file_name}" if base else file_name


# ------------------------------------------------------------------ tasks
def _ls_task(index: int, record: dict[str, Any], key: str, audio: str) -> dict[str, Any]:
    data = {
        "audio": LS_URL_PREFIX + quote(audio),
        "key": key,
        "dataset": record["dataset"],
        "clip_id": record["clip_id"],
        "transcript": record["transcript"] or "",
        **{f: record[f] for f in ("split", "speaker", "gender") if record[f]},
        "human": record["human"],
        "ambiguity": record["ambiguity"],
    }
    predictions = []
    for p in record["predictions"]:
        score = max(p["distribution"].values())
        predictions.append(
            {
                "model_version": f"{p['run_label']} / {p['strategy']}",
                "score": score,
                "result": [
                    {
                        "id": f"r{p['run']}-{p['strategy']}",
                        "from_name": "emotion",
                        "to_name": "audio",
                        "type": "choices",
                        "value": {"choices": [p["label"]]},
                        "score": score,
                    }
                ],
            }
        )
    return {"id": index, "data": data, "predictions": predictions}


def _ls_keys(records: list[dict[str, Any]]) -> list[str]:
    """Clip keys as task keys; `dataset/key` for all when two datasets share a key."""
    keys = [r["key"] for r in records]
    if len(set(keys)) == len(keys):
        return keys
    return [f"{r['dataset']}/{r['key']}" for r in records]


# ------------------------------------------------------------------ README
def ls_readme(opts: SubsetOptions, n_tasks: int) -> str:
    """The steps from this folder to annotations back in ambiscope, with absolute paths."""
    root = opts.extra["ls_root"]
    out = str(Path(root, opts.extra["ls_out"])) if opts.extra["ls_out"] else root
    audio = str(Path(out, AUDIO_DIR))
    return f"""# Label Studio tasks from ambiscope

{n_tasks} tasks in `{LS_TASKS}` for the labeling interface in `{LS_CONFIG}`; the audio
is in `{AUDIO_DIR}/`. Steps for Label Studio {LS_VERSION} (checked with 1.23.2); the
task audio is `/data/local-files/?d=<path below the document root>` and answers 404
until steps 1 and 3 are done.

## 1. Start Label Studio with local files served from the document root

    export LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true
    export LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT={root}
    label-studio start

One instance serves every export placed below this root: export the next one with
`ambiscope export subset --format label-studio --ls-root {root} {root}/OTHER`.

## 2. Create a project with the labeling interface

UI: Create Project > Labeling Setup > Custom template > Code: paste `{LS_CONFIG}`.
API: `POST /api/projects/` with `{{"title": "...", "label_config": "<contents of {LS_CONFIG}>"}}`.

## 3. Attach a Local Storage for the audio

UI: project Settings > Cloud Storage > Add Source Storage > Local Files, Absolute local
path below, Import Method "Tasks"; save it without syncing (the tasks come from step 4).
API: `POST /api/storages/localfiles/` with
`{{"project": PROJECT_ID, "path": "<the path below>", "use_blob_urls": false}}`.

    {audio}

## 4. Import the tasks

UI: Import > upload `{LS_TASKS}`. API: `POST /api/projects/PROJECT_ID/import` with the
file (`-F file=@{LS_TASKS}`). Model distributions appear as predictions.

## API tokens

Label Studio {LS_VERSION} uses personal access tokens; legacy tokens answer 401 until an
admin enables them (Organization > API Tokens Settings). Create one under Account &
Settings > Personal Access Token, exchange it for a short-lived access token and send
that as a Bearer token:

    curl -X POST http://localhost:8080/api/token/refresh/ \\
         -H 'Content-Type: application/json' -d '{{"refresh": "PERSONAL_ACCESS_TOKEN"}}'
    curl -H 'Authorization: Bearer ACCESS_TOKEN' http://localhost:8080/api/projects/

## 5. Bring the annotations back

Export the project as JSON (or JSON-MIN): Export > JSON, or
`GET /api/projects/PROJECT_ID/export?exportType=JSON`, then

    ambiscope import label-studio EXPORT.json

The tasks carry `data.dataset` and `data.clip_id`, so the votes land on the same clips
of the workspace this export came from (one Label Studio user = one annotator);
importing the same export again adds nothing.
"""


# ------------------------------------------------------------------ writer
@SUBSET_FORMATS.register("label-studio", audio=True, extra=("ls_root",), prepare=resolve_ls_root)
def write_label_studio(
    out: Path, records: list[dict[str, Any]], labels: Sequence[str], opts: SubsetOptions
) -> list[str]:
    """`tasks.json` (model distributions as predictions), `labeling_config.xml`, README.md.

    Needs the options `resolve_ls_root` returned (the `prepare` hook of the registry
    entry): `out` is the temporary folder the export is built in, not OUT.
    """
    keys = _ls_keys(records)
    tasks = [
        _ls_task(i + 1, r, k, _under_root(opts, r["file_name"]))
        for i, (r, k) in enumerate(zip(records, keys, strict=True))
    ]
    (out / LS_TASKS).write_text(dumps(tasks) + "\n", encoding="utf-8")
    has_text = any(r["transcript"] for r in records)
    (out / LS_CONFIG).write_text(labeling_config(labels, transcript=has_text), encoding="utf-8")
    (out / LS_README).write_text(ls_readme(opts, len(tasks)), encoding="utf-8")
    return [
        f"Label Studio: follow {LS_README} in the export (document root "
        f"{opts.extra['ls_root']}, a Local Storage for the {AUDIO_DIR} folder, then {LS_TASKS})"
    ]
