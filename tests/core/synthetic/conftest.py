"""Shared by the synthetic-rater tests: a 4-clip demo workspace and the fake ALM base.

The fakes stand in for a model, not for anything that runs here (SQLite, the demo audio
and the run loop are real): they answer from the prompt text so a test can say which
persona got which instruction and what the parser made of the answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ambiscope.core.alm.base import AudioInput, Candidate, ChatPrompt, GenerationParams
from ambiscope.core.demo import DemoSpec, build_demo


@pytest.fixture()
def demo_db(tmp_path: Path) -> Path:
    path = tmp_path / "demo.db"
    build_demo(path, DemoSpec(n_clips=4, seed=5))
    return path


@dataclass
class PromptAnswering:
    """A backend whose `answer(prompt)` decides the one candidate; records every call."""

    calls: list[tuple[ChatPrompt, GenerationParams]] = field(default_factory=list)
    name: str = "fake"
    model_id: str = "fake-alm"
    sample_rate: int = 16_000
    max_audio_seconds: float | None = None

    def describe(self) -> dict[str, Any]:
        return {"model": self.model_id, "revision": "rev-1"}

    def answer(self, prompt: ChatPrompt) -> str:
        raise NotImplementedError

    def sample(
        self, audio: AudioInput, prompt: ChatPrompt, params: GenerationParams
    ) -> list[Candidate]:
        self.calls.append((prompt, params))
        return [Candidate(self.answer(prompt))]

    def close(self) -> None:
        pass
