"""Fixtures for every job test."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def keep_logging() -> Iterator[None]:
    """In-process workers (`run_worker`) configure the `ambiscope` logger for a worker's
    log file; tests that run after them (caplog) need it as it was."""
    logger = logging.getLogger("ambiscope")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    yield
    logger.handlers[:], logger.level, logger.propagate = saved
