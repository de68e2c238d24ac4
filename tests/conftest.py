"""Shared pytest fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The random-weight Qwen2-Audio checkpoint (ambiscope.core.alm.tiny), built once."""
    from ambiscope.core.alm.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-alm") / "model")


@pytest.fixture(scope="module")
def tb(tiny_model_dir: Path):
    """The tiny model loaded in the transformers backend (1 torch thread, as servers run)."""
    import torch

    from ambiscope.core.alm.backends.transformers.backend import TransformersBackend

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    backend = TransformersBackend(str(tiny_model_dir), device="cpu")
    yield backend
    backend.close()
    torch.set_num_threads(threads)


@pytest.fixture
def serve(tb):
    """Start `serve-model` servers over `tb` (options: failure simulation, names...);
    every server is stopped after the test."""
    from ambiscope.core.alm.serve_openai import make_server, start_in_thread

    started = []

    def start(**options):
        srv = make_server(tb, record=True, **options)
        start_in_thread(srv)
        started.append(srv)
        return srv

    yield start
    for srv in started:
        srv.shutdown()
        srv.server_close()
