"""Shared pytest fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The random-weight Qwen2-Audio checkpoint (ambiscope.core.alm.tiny), built once."""
    from ambiscope.core.alm.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-alm") / "model")
