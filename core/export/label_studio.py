"""The Label Studio subset export: `tasks.json` and `labeling_config.xml`.

Tasks carry `data.dataset` and `data.clip_id` so an annotated export read back with
`ambiscope import label-studio` lands on the same clips; every model distribution of the
selection becomes a prediction (argmax choice, its probability as score,
`model_version` = "run label / strategy").
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote
from xml.sax.saxutils import quoteattr

from ambiscope.core.export import SUBSET_FORMATS
from ambiscope.core.export._common import dumps
from ambiscope.core.export.subset import SubsetOptions

LS_TASKS = "tasks.json"
LS_CONFIG = "labeling_config.xml"
LS_URL_PREFIX = "/data/local-files/?d="


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


def _ls_task(index: int, record: dict[str, Any], key: str) -> dict[str, Any]:
    data = {
        "audio": LS_URL_PREFIX + quote(record["file_name"]),
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


@SUBSET_FORMATS.register("label-studio", audio=True)
def write_label_studio(
    out: Path, records: list[dict[str, Any]], labels: Sequence[str], opts: SubsetOptions
) -> list[str]:
    """`tasks.json` (model distributions as predictions) and `labeling_config.xml`."""
    keys = _ls_keys(records)
    tasks = [_ls_task(i + 1, r, k) for i, (r, k) in enumerate(zip(records, keys, strict=True))]
    (out / LS_TASKS).write_text(dumps(tasks) + "\n", encoding="utf-8")
    has_text = any(r["transcript"] for r in records)
    (out / LS_CONFIG).write_text(labeling_config(labels, transcript=has_text), encoding="utf-8")
    return [
        "Label Studio: create a project with labeling_config.xml, enable local files "
        f"(LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true, LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT="
        f"<this folder>), import {LS_TASKS}; re-import the finished export with "
        "`ambiscope import label-studio EXPORT.json --audio-root <this folder>`",
    ]
