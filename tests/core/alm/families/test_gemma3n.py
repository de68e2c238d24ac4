"""Gemma 3n: the family's audio path, proven where timm cannot be imported.

Every Gemma 3n checkpoint builds a timm vision tower, so without timm + torchvision the
conformance suite skips the family. The audio path never touches that tower, so here it is
replaced by an inert module at construction (``AutoModel.from_config`` for the
``gemma3n_vision`` config only) and the conformance checks run on the tiny checkpoint
through the real processor, model class and backend. Where timm is importable the shared
suite runs the family unmodified.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from unittest import mock

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from tests.core.alm import test_families as conformance  # noqa: E402


class _InertVisionTower(torch.nn.Module):
    """Stands in for TimmWrapperModel; fails loudly if images ever reach it."""

    def __init__(self, config) -> None:
        super().__init__()
        self.config = config

    def forward(self, *args, **kwargs):
        raise AssertionError("the audio path must not run the vision tower")


@pytest.fixture(scope="module")
def no_timm_tower():
    import transformers.models.gemma3n.modeling_gemma3n as modeling

    build_tower = modeling.AutoModel.from_config

    def from_config(config, **kwargs):
        if config.model_type == "gemma3n_vision":
            return _InertVisionTower(config)
        return build_tower(config, **kwargs)

    with mock.patch.object(modeling.AutoModel, "from_config", side_effect=from_config):
        yield


@pytest.fixture(scope="module")
def tiny(no_timm_tower, tmp_path_factory) -> Path:
    from ambiscope.core.alm.tiny.gemma3n import write_checkpoint

    return write_checkpoint(tmp_path_factory.mktemp("gemma3n"), seed=0)


@pytest.fixture(scope="module")
def backend(tiny):
    from ambiscope.core.alm.backends.transformers.backend import TransformersBackend

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    b = TransformersBackend(str(tiny), device="cpu")
    yield b
    b.close()
    torch.set_num_threads(threads)


def test_build_explains_why_it_is_unavailable(tmp_path: Path) -> None:
    from transformers.utils import is_timm_available

    from ambiscope.core.alm.tiny import TinyUnavailable
    from ambiscope.core.alm.tiny.gemma3n import build

    if is_timm_available():
        pytest.skip("timm imports here: the conformance suite builds the real thing")
    with pytest.raises(TinyUnavailable, match="TimmWrapperModel"):
        build(tmp_path)


def test_prompt_layout(backend) -> None:
    inputs = backend.build_inputs(conformance.AUDIO, conformance.PROMPT)
    text = backend.tokenizer.decode(inputs["input_ids"][0])
    head = "<bos><start_of_turn>user\nYou are an expert listener.\n\n\n\n<start_of_audio>"
    assert text.startswith(head)
    tail = "<end_of_audio>\n\nWhich emotion does the speaker express? Answer with one word."
    assert text.endswith(f"{tail}<end_of_turn>\n<start_of_turn>model\n")
    assert text.count("<audio_soft_token>") == 188


def _conformance_cases() -> list:
    """Every check of the shared suite that runs on a loaded backend, with its own
    parametrizations (the CLI check builds through ``make-tiny-model``, which skips here)."""
    cases = []
    for name, check in vars(conformance).items():
        if not name.startswith("test_") or "backend" not in inspect.signature(check).parameters:
            continue
        grids = [m for m in getattr(check, "pytestmark", []) if m.name == "parametrize"]
        if not grids:
            cases.append(pytest.param(name, {}, id=name))
        for grid in grids:
            (argname,) = grid.args[0].split(",")
            for value in grid.args[1]:
                cases.append(pytest.param(name, {argname: value}, id=f"{name}[{value}]"))
    return cases


@pytest.mark.parametrize(("check", "params"), _conformance_cases())
def test_conformance(backend, tiny, monkeypatch, check: str, params: dict) -> None:
    function = getattr(conformance, check)
    available = {"backend": backend, "family_dir": ("gemma3n", tiny), "monkeypatch": monkeypatch}
    wanted = inspect.signature(function).parameters
    function(**{k: v for k, v in available.items() if k in wanted}, **params)
