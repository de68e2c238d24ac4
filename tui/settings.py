"""Per-user TUI settings, stored as JSON under the XDG config directory.

The researcher's preferences (flag names, whether their own votes count as human, the
theme) belong to the person, not to a workspace shared with colleagues, so they live in
`$XDG_CONFIG_HOME/ambiscope/settings.json` (`~/.config/...` by default). The file is
optional and forgiving: unknown keys are ignored and a broken file falls back to the
defaults with a warning instead of stopping the app. `AMBISCOPE_CONFIG` points elsewhere
(tests and benchmarks use it to stay out of the real home directory).
"""

from __future__ import annotations

import getpass
import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ambiscope.core.jobs.policy import WorkerPolicy


def default_user() -> str:
    """The OS user name; the researcher's identity for flags, notes and own votes."""
    try:
        return getpass.getuser() or "me"
    except (KeyError, OSError):
        return "me"


def settings_path() -> Path:
    """Where settings are read from and saved to (see module docstring)."""
    override = os.environ.get("AMBISCOPE_CONFIG")
    if override:
        return Path(override)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "ambiscope" / "settings.json"


@dataclass
class Settings:
    """What the researcher can configure (all optional in the file)."""

    flag_names: list[str] = field(
        default_factory=lambda: ["ambiguous", "mislabelled", "bad-audio", "check"]
    )
    user: str = field(default_factory=default_user)
    include_own_votes: bool = False  # count own votes in the human distribution
    advance_after_vote: bool = False  # a vote 1-9 moves the cursor to the next clip (V)
    js_threshold: float = 0.3  # the `>` quick filter
    theme: str = "textual-dark"
    page_size: int = 100
    bootstrap: int = 200
    # What the worker the TUI starts may let a workspace's jobs do (core/jobs/policy.py):
    # a shared workspace must not decide to run code, send a secret or reach a server.
    allow_remote_code: bool = False
    allow_endpoints: list[str] = field(default_factory=list)
    allow_key_envs: list[str] = field(default_factory=list)
    allow_dirs: list[str] = field(default_factory=list)  # prompt files beyond the workspace's

    @property
    def default_flag(self) -> str:
        return self.flag_names[0] if self.flag_names else "ambiguous"

    @property
    def self_annotator(self) -> str:
        """External id of the researcher's own annotator row (kind `self`)."""
        return f"self:{self.user}"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Settings:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        settings = cls(**values)
        names = [str(n).strip() for n in settings.flag_names if str(n).strip()]
        settings.flag_names = names or ["ambiguous"]
        settings.page_size = max(20, min(int(settings.page_size), 1000))
        settings.allow_remote_code = settings.allow_remote_code is True
        settings.advance_after_vote = settings.advance_after_vote is True
        settings.allow_endpoints = _strings(settings.allow_endpoints, "allow_endpoints")
        settings.allow_key_envs = _strings(settings.allow_key_envs, "allow_key_envs")
        settings.allow_dirs = _strings(settings.allow_dirs, "allow_dirs")
        return settings

    def worker_policy(self) -> WorkerPolicy:
        """The allow list for the worker the TUI starts (ValueError: a bad endpoint URL)."""
        return WorkerPolicy(
            self.allow_remote_code, self.allow_endpoints, self.allow_key_envs, self.allow_dirs
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _strings(value: Any, name: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{name} must be a list of strings")
    return [v.strip() for v in value if v.strip()]


def load_settings(path: Path | None = None) -> tuple[Settings, str | None]:
    """(settings, warning): a missing file is fine, a broken one gives defaults + warning."""
    p = path or settings_path()
    if not p.exists():
        return Settings(), None
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError("expected a JSON object")
        return Settings.from_dict(data), None
    except (OSError, ValueError, TypeError) as exc:
        return Settings(), f"ignoring settings in {p}: {exc}"


def save_settings(settings: Settings, path: Path | None = None) -> str | None:
    """Write settings atomically; returns an error message instead of raising."""
    p = path or settings_path()
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_suffix(".tmp")
        tmp.write_text(json.dumps(settings.to_dict(), indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, p)
    except OSError as exc:
        return f"could not save settings to {p}: {exc}"
    return None
