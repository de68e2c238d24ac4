"""Qwen2.5-Omni and Qwen3-Omni: thinker loading, audio+text processor, 3-D RoPE premises."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from ambiscope.core.alm.families import FAMILIES, build_messages  # noqa: E402
from ambiscope.core.alm.tiny import build_tiny_model  # noqa: E402

# family -> (full-model class, processor class, processing module, audio token)
OMNI = {
    "qwen2_5_omni": (
        "Qwen2_5OmniForConditionalGeneration",
        "Qwen2_5OmniProcessor",
        "transformers.models.qwen2_5_omni.processing_qwen2_5_omni",
        "<|AUDIO|>",
    ),
    "qwen3_omni": (
        "Qwen3OmniMoeForConditionalGeneration",
        "Qwen3OmniMoeProcessor",
        "transformers.models.qwen3_omni_moe.processing_qwen3_omni_moe",
        "<|audio_pad|>",
    ),
}


@pytest.fixture(scope="module", params=sorted(OMNI))
def omni(request, tmp_path_factory) -> tuple[str, Path]:
    name = request.param
    return name, build_tiny_model(tmp_path_factory.mktemp(f"tiny-{name}"), family=name)


def _noise(seconds: float) -> np.ndarray:
    rng = np.random.default_rng(0)
    return (0.1 * rng.standard_normal(int(16000 * seconds))).astype(np.float32)


def _processor(name: str, path: Path):
    module, _, attr = FAMILIES.get(name).processor.partition(":")
    return getattr(__import__(module, fromlist=[attr]), attr)(str(path), local_files_only=True)


def test_checkpoint_has_the_hub_layout(omni) -> None:
    """One full Omni checkpoint (thinker + speech output), as the hub repos ship."""
    from safetensors import safe_open

    name, path = omni
    config = json.loads((path / "config.json").read_text())
    assert config["model_type"] == FAMILIES.get(name).model_types[0]
    assert config["enable_audio_output"] is True
    with safe_open(str(path / "model.safetensors"), "pt") as f:
        prefixes = {key.split(".", 1)[0] for key in f.keys()}  # noqa: SIM118
    assert {"thinker", "talker"} <= prefixes and len(prefixes) == 3
    processor_class = json.loads((path / "preprocessor_config.json").read_text())
    assert processor_class["processor_class"] == OMNI[name][1]


def test_the_thinker_loads_alone_from_the_full_checkpoint(omni) -> None:
    """The family's class reads ``thinker_config`` and exactly the ``thinker.*`` weights."""
    import transformers

    name, path = omni
    thinker = getattr(transformers, FAMILIES.get(name).auto_class).from_pretrained(path)
    full = getattr(transformers, OMNI[name][0]).from_pretrained(path).thinker
    ours, theirs = thinker.state_dict(), full.state_dict()
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    assert not hasattr(thinker, "talker")


def test_audio_text_processor_expands_audio_like_the_real_one(omni) -> None:
    """Same ids as the Omni processor's own rule: one placeholder per encoder output frame."""
    import importlib

    name, path = omni
    processor = _processor(name, path)
    assert isinstance(processor, getattr(importlib.import_module("transformers"), OMNI[name][1]))
    assert not hasattr(processor, "image_processor") and not hasattr(processor, "video_processor")
    template = json.loads((path / "chat_template.json").read_text())["chat_template"]
    assert processor.chat_template == template
    audio = _noise(2.5)
    messages = build_messages(FAMILIES.get(name), "Which emotion?", "Be brief.", audio)
    got = processor.apply_chat_template(
        messages, tokenize=True, return_dict=True, add_generation_prompt=True, return_tensors="pt"
    )
    text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    frames = int(got["feature_attention_mask"].sum())
    assert frames == len(audio) // 160
    count = importlib.import_module(OMNI[name][2])._get_feat_extract_output_lengths
    tokens = int(count(torch.tensor(frames)))
    token = OMNI[name][3]
    want = processor.tokenizer(text.replace(token, token * tokens), add_special_tokens=False)
    assert got["input_ids"][0].tolist() == want["input_ids"]
    assert int((got["input_ids"] == processor.audio_token_id).sum()) == tokens


def test_audio_prompts_have_one_dimensional_positions_and_no_rope_delta(omni) -> None:
    """Why encode-once is exact: for audio (no image/video grid) the 3-D RoPE positions are
    the 1-D index on all three axes and the cached ``rope_deltas`` is 0, so a cache continued
    with plain text tokens (``cache_length + arange``) lands on the right positions."""
    import transformers

    name, path = omni
    thinker = getattr(transformers, FAMILIES.get(name).auto_class).from_pretrained(path)
    processor = _processor(name, path)
    messages = build_messages(FAMILIES.get(name), "Which emotion?", None, _noise(3.3))
    batch = processor.apply_chat_template(
        messages, tokenize=True, return_dict=True, add_generation_prompt=True, return_tensors="pt"
    )
    positions, deltas = thinker.model.get_rope_index(
        batch["input_ids"],
        attention_mask=batch["attention_mask"],
        audio_seqlens=batch["feature_attention_mask"].sum(-1),
    )
    n = batch["input_ids"].shape[1]
    assert torch.equal(positions.long(), torch.arange(n).expand(3, 1, n))
    assert deltas.flatten().tolist() == [0]


def test_prefill_then_plain_text_tokens_equals_one_forward(omni) -> None:
    """The encode-once pattern at model level: prefill up to the audio, extend the cache with
    text ids alone (no mask, no positions: the model's rope_deltas path), compare logits."""
    import transformers

    name, path = omni
    thinker = getattr(transformers, FAMILIES.get(name).auto_class).from_pretrained(path).eval()
    processor = _processor(name, path)
    messages = build_messages(FAMILIES.get(name), "Which emotion?", "Be brief.", _noise(2.0))
    batch = dict(
        processor.apply_chat_template(
            messages,
            tokenize=True,
            return_dict=True,
            add_generation_prompt=True,
            return_tensors="pt",
        )
    )
    ids = batch["input_ids"]
    cut = int((ids[0] == processor.audio_token_id).nonzero()[-1]) + 1
    head = {**batch, "input_ids": ids[:, :cut], "attention_mask": batch["attention_mask"][:, :cut]}
    with torch.no_grad():
        full = thinker(**batch, use_cache=False).logits
        cache = thinker(**head, use_cache=True).cache
        rows = 3  # the cache expanded, as for N samples / label batches
        cache.batch_repeat_interleave(rows)
        tail = thinker(input_ids=ids[:, cut:].repeat(rows, 1), cache=cache).logits
    for row in range(rows):
        torch.testing.assert_close(tail[row], full[0, cut:], atol=1e-5, rtol=1e-5)
