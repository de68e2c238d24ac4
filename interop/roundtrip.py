"""The Label Studio round trip through a real, running Label Studio (run by interop/run.sh).

A small demo workspace (12 clips, the tiny model's run) -> two `ambiscope export subset
--format label-studio --ls-root` exports under one document root -> for each: project with
the exported labeling config, task import with the predictions, a task's audio 404 before
and served after the Local Storage is attached -> on the first: annotations by two users
through the API, each skipping one task -> JSON and JSON-MIN exports -> `ambiscope import
label-studio` into the SAME workspace -> the votes are on the original clips, nothing
created, re-imports change nothing -> one user changes an answer, export again -> the new
answer replaces the old vote, re-imports change nothing.

Authentication is what Label Studio 1.23 does by default: each user logs in, creates a
personal access token (`POST /api/token/`) and exchanges it for an access token
(`POST /api/token/refresh/`, Bearer); the legacy token is checked to answer 401, as the
export's README says. The second user signs up through the sign-up form, as a colleague
invited to the instance would.

Runs with the Label Studio venv's Python (for `requests`); talks to ambiscope only through
its command line and reads the workspace with sqlite3, read-only.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import requests

CHOICES = {"admin": ("happy", "sad"), "colleague": ("angry",)}
FAILED: list[str] = []


def check(what: str, ok: bool, detail: str = "") -> bool:
    """One transcript line; a failure is remembered and ends the run with exit status 1."""
    print(f"{'PASS' if ok else 'FAIL'}  {what}{f'  ({detail})' if detail else ''}", flush=True)
    if not ok:
        FAILED.append(what)
    return ok


def require(what: str, ok: bool, detail: str = "") -> None:
    """A check later steps depend on: stop here when it fails."""
    if not check(what, ok, detail):
        raise SystemExit(finish())


def finish() -> int:
    print("\nRESULT:", "PASS" if not FAILED else f"FAIL ({len(FAILED)}: {'; '.join(FAILED)})")
    return 1 if FAILED else 0


# --------------------------------------------------------------------------- ambiscope
def ambiscope(
    args: argparse.Namespace, *argv: str, show: int = 8
) -> subprocess.CompletedProcess[str]:
    """Run the ambiscope command line on the workspace; its first `show` lines go into
    the transcript (and all of them when it fails)."""
    cmd = [args.ambiscope, "--db", str(args.work / "ws.db"), *argv]
    print("$ ambiscope", " ".join(argv[:1] + tuple(_short(a, args) for a in argv[1:])))
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    lines = (done.stdout + done.stderr).strip().splitlines()
    for line in lines if done.returncode else lines[:show]:
        print(f"    {line}")
    return done


def _short(arg: str, args: argparse.Namespace) -> str:
    text = arg.replace(str(args.work), "$WORK")
    return f"'{text}'" if " " in text or not text else text


def votes_by_annotator(db: Path) -> dict[str, dict[int, list[str]]]:
    """annotator external id -> clip id -> labels (rank order), read-only."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        rows = conn.execute(
            "SELECT a.external_id, v.clip_id, v.label FROM votes v "
            "JOIN annotators a ON a.id = v.annotator_id ORDER BY v.clip_id, v.rank"
        ).fetchall()
    out: dict[str, dict[int, list[str]]] = {}
    for annotator, clip_id, label in rows:
        out.setdefault(annotator, {}).setdefault(clip_id, []).append(label)
    return out


def table_counts(db: Path) -> dict[str, int]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return {
            t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in ("datasets", "clips", "votes", "annotators")
        }


# --------------------------------------------------------------------------- Label Studio
class User:
    """One Label Studio user with an API session (personal access token -> Bearer)."""

    def __init__(self, url: str, email: str, password: str) -> None:
        self.url, self.email, self.password = url, email, password
        self.web = requests.Session()
        self.api = requests.Session()
        self.id = 0

    def _form(self, path: str, data: dict[str, str]) -> requests.Response:
        self.web.get(self.url + path, timeout=30)
        token = self.web.cookies.get("csrftoken", "")
        return self.web.post(
            self.url + path,
            data={"csrfmiddlewaretoken": token, **data},
            headers={"Referer": self.url + path},
            timeout=30,
        )

    def login(self) -> None:
        self._form("/user/login/", {"email": self.email, "password": self.password})

    def signup(self) -> None:
        self._form("/user/signup/", {"email": self.email, "password": self.password})

    def personal_access_token(self) -> str:
        """Create a personal access token with the logged-in browser session."""
        answer = self.web.post(
            self.url + "/api/token/",
            headers={"X-CSRFToken": self.web.cookies.get("csrftoken", ""), "Referer": self.url},
            timeout=30,
        )
        answer.raise_for_status()
        return str(answer.json()["token"])

    def authorize(self, pat: str) -> None:
        answer = requests.post(self.url + "/api/token/refresh/", json={"refresh": pat}, timeout=30)
        answer.raise_for_status()
        self.api.headers["Authorization"] = f"Bearer {answer.json()['access']}"
        self.id = int(self.get("/api/current-user/whoami")["id"])

    def get(self, path: str, **kw: Any) -> Any:
        answer = self.api.get(self.url + path, timeout=60, **kw)
        answer.raise_for_status()
        return answer.json()

    def post(self, path: str, **kw: Any) -> Any:
        return self._send("POST", path, **kw)

    def patch(self, path: str, **kw: Any) -> Any:
        return self._send("PATCH", path, **kw)

    def _send(self, method: str, path: str, **kw: Any) -> Any:
        answer = self.api.request(method, self.url + path, timeout=60, **kw)
        if answer.status_code >= 400:
            raise RuntimeError(f"{method} {path}: {answer.status_code} {answer.text[:300]}")
        return answer.json()


def wait_until_up(url: str, pid: int, seconds: float = 300) -> float:
    """Seconds until /health answers (migrations of a fresh data dir take a while)."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        try:
            if requests.get(url + "/health", timeout=5).status_code == 200:
                return time.monotonic() - started
        except requests.ConnectionError:
            pass
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return -1
        time.sleep(1)
    return -1


def retry(call: Callable[[], Any], tries: int = 10) -> Any:
    for attempt in range(tries):
        try:
            return call()
        except requests.HTTPError:
            if attempt == tries - 1:
                raise
            time.sleep(1)
    return None


def sign_in(args: argparse.Namespace) -> tuple[User, User]:
    admin = User(args.url, args.admin, args.password)
    admin.login()
    legacy = admin.web.get(args.url + "/api/current-user/token", timeout=30).json()["token"]
    refused = requests.get(
        args.url + "/api/projects/", headers={"Authorization": f"Token {legacy}"}, timeout=30
    )
    detail = refused.json().get("detail", "") if refused.status_code == 401 else refused.text
    check("legacy API token answers 401 by default", refused.status_code == 401, detail)
    admin.authorize(retry(admin.personal_access_token))
    check("admin: personal access token -> Bearer access token", admin.id > 0, f"id {admin.id}")
    colleague = User(args.url, "colleague@example.com", "colleague-" + args.password)
    colleague.signup()
    colleague.authorize(retry(colleague.personal_access_token))
    require("second user signed up, own token", colleague.id not in (0, admin.id))
    return admin, colleague


def open_project(admin: User, out: Path, title: str) -> tuple[int, list[dict[str, Any]]]:
    """Project + Local Storage + task import for one export; returns (id, tasks)."""
    config = (out / "labeling_config.xml").read_text(encoding="utf-8")
    project = admin.post("/api/projects/", json={"title": title, "label_config": config})["id"]
    tasks_file = out / "tasks.json"
    exported = json.loads(tasks_file.read_text(encoding="utf-8"))
    n_predictions = sum(len(t["predictions"]) for t in exported)
    with tasks_file.open("rb") as fh:
        imported = admin.post(f"/api/projects/{project}/import", files={"file": fh})
    check(
        f"{title}: imported tasks.json with the model's predictions",
        (imported.get("task_count"), imported.get("prediction_count"))
        == (len(exported), n_predictions)
        and n_predictions > 0,
        f"{imported.get('task_count')} tasks, {imported.get('prediction_count')} predictions",
    )
    tasks = admin.get("/api/tasks/", params={"project": project, "page_size": 1000})["tasks"]
    url = admin.url + tasks[0]["data"]["audio"]
    before = admin.api.get(url, timeout=30).status_code
    storage = admin.post(
        "/api/storages/localfiles/",
        json={"project": project, "path": str(out / "audio"), "use_blob_urls": False},
    )
    answer = admin.api.get(url, timeout=30)
    local = out / "audio" / Path(tasks[0]["data"]["audio"]).name
    check(
        f"{title}: audio 404 before the Local Storage, 200 + the file's bytes after",
        before == 404 and answer.status_code == 200 and answer.content == local.read_bytes(),
        f"{before} -> {answer.status_code} {answer.headers.get('Content-Type')}, "
        f"{len(answer.content)} bytes, storage {storage['id']}, {tasks[0]['data']['audio']}",
    )
    return project, tasks


def choices(labels: Sequence[str]) -> list[dict[str, Any]]:
    """An annotation result choosing `labels` in the exported config's emotion control."""
    value = {"choices": list(labels)}
    return [{"from_name": "emotion", "to_name": "audio", "type": "choices", "value": value}]


def annotate(user: User, tasks: list[dict[str, Any]], labels: Sequence[str]) -> dict[int, int]:
    """Annotate every task; the last one is skipped (Label Studio stores a cancelled
    annotation). Returns task id -> annotation id."""
    ids = {}
    for task in tasks[:-1]:
        made = user.post(f"/api/tasks/{task['id']}/annotations/", json={"result": choices(labels)})
        ids[task["id"]] = made["id"]
    last = tasks[-1]["id"]
    skip = {"result": [], "was_cancelled": True}
    ids[last] = user.post(f"/api/tasks/{last}/annotations/", json=skip)["id"]
    return ids


def export(admin: User, project: int, kind: str, target: Path) -> list[dict[str, Any]]:
    answer = admin.api.get(
        f"{admin.url}/api/projects/{project}/export", params={"exportType": kind}, timeout=120
    )
    answer.raise_for_status()
    target.write_bytes(answer.content)
    return list(answer.json())


def check_votes(db: Path, expected: dict[str, dict[int, list[str]]]) -> None:
    votes = votes_by_annotator(db)
    for annotator, labels in expected.items():
        got = {clip: sorted(v) for clip, v in votes.get(annotator, {}).items()}
        check(
            f"{annotator}'s votes are on the original clips",
            got == labels,
            f"{len(got)} clips, {sum(map(len, got.values()))} votes",
        )


def reimport(args: argparse.Namespace, db: Path, *names: str) -> None:
    """Importing the same annotations again (JSON or JSON-MIN) changes nothing."""
    counts, votes = table_counts(db), votes_by_annotator(db)
    for name in names:
        again = ambiscope(args, "import", "label-studio", str(args.work / name))
        check(
            f"re-import of {name} changes nothing",
            again.returncode == 0
            and table_counts(db) == counts
            and votes_by_annotator(db) == votes,
            str(table_counts(db)),
        )


# --------------------------------------------------------------------------- the run
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in ("url", "ambiscope", "admin", "password"):
        parser.add_argument(f"--{name}", required=True)
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--server-pid", type=int, required=True)
    args = parser.parse_args()
    db = args.work / "ws.db"

    demo = ambiscope(args, "demo", "--clips", "12", "--n", "2", "--no-tui", show=1)
    require(
        "demo workspace (12 clips, simulated raters, the tiny model's run)", demo.returncode == 0
    )
    batches = {"batch 1": "", "batch+2": "split:train"}
    outs = {}
    for name, where in batches.items():
        outs[name] = args.root / "exports" / name
        done = ambiscope(
            args, "export", "subset", "--format", "label-studio", "--where", where,
            "--strategy", "wbon", "--ls-root", str(args.root), str(outs[name]),
        )  # fmt: skip
        require(f"export {name!r} below the document root", done.returncode == 0)

    up = wait_until_up(args.url, args.server_pid)
    require("Label Studio answers /health", up >= 0, f"after {up:.0f} s")
    version = requests.get(args.url + "/api/version", timeout=30).json()
    print(f"      Label Studio {version.get('release') or version}")
    admin, colleague = sign_in(args)

    first, tasks = open_project(admin, outs["batch 1"], "batch 1")
    open_project(admin, outs["batch+2"], "batch+2")  # one instance serves both exports
    made = {
        who: annotate(user, tasks, CHOICES[who])
        for who, user in (("admin", admin), ("colleague", colleague))
    }
    check(
        "two users annotated every task through the API, one skip each",
        all(len(ids) == len(tasks) for ids in made.values()),
    )
    full = export(admin, first, "JSON", args.work / "export.json")
    export(admin, first, "JSON_MIN", args.work / "export-min.json")
    completed = {a["completed_by"] for t in full for a in t["annotations"]}
    check(
        "JSON export: both users' annotations, data.dataset and data.clip_id kept",
        completed == {admin.id, colleague.id}
        and all({"dataset", "clip_id"} <= set(t["data"]) for t in full),
        f"{len(full)} tasks, users {sorted(completed)}, "
        f"predictions as {type((full[0]['predictions'] or [None])[0]).__name__}",
    )

    clip_of = {t["id"]: t["data"]["clip_id"] for t in full}
    annotated = {clip_of[t["id"]] for t in tasks[:-1]}
    expected = {
        f"ls-{user.id}": dict.fromkeys(annotated, sorted(CHOICES[who]))
        for who, user in (("admin", admin), ("colleague", colleague))
    }
    before = table_counts(db)
    merged = ambiscope(args, "import", "label-studio", str(args.work / "export.json"))
    after = table_counts(db)
    check("import exits 0", merged.returncode == 0)
    check(
        "no dataset or clip created",
        (after["datasets"], after["clips"]) == (before["datasets"], before["clips"]),
        f"{before} -> {after}",
    )
    check_votes(db, expected)
    reimport(args, db, "export.json", "export-min.json")

    # the admin changes their mind on the first task: the new answer replaces the old one
    changed = clip_of[tasks[0]["id"]]
    admin.patch(
        f"/api/annotations/{made['admin'][tasks[0]['id']]}/", json={"result": choices(["neutral"])}
    )
    export(admin, first, "JSON", args.work / "export-2.json")
    export(admin, first, "JSON_MIN", args.work / "export-2-min.json")
    again = ambiscope(args, "import", "label-studio", str(args.work / "export-2.json"))
    check("import of the changed export exits 0", again.returncode == 0)
    expected[f"ls-{admin.id}"][changed] = ["neutral"]
    check_votes(db, expected)
    reimport(args, db, "export-2.json", "export-2-min.json")
    return finish()


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (requests.RequestException, RuntimeError, KeyError) as exc:
        check("the round trip ran to the end", False, f"{type(exc).__name__}: {exc}")
        sys.exit(finish())
