"""Voxtral: the tiny Tekken tokenizer and why the family entry reads as it does."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("mistral_common")

from ambiscope.core.alm.families import FAMILIES, build_messages  # noqa: E402
from ambiscope.core.alm.tiny import build_tiny_model  # noqa: E402

YES_NO = ("Yes", " Yes", "yes", " yes", "YES", " YES", "No", " No", "no", " no", "NO", " NO")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-voxtral"), family="voxtral")


@pytest.fixture(scope="module")
def processor(tiny):
    """What the backend loads: the family's assembly (a text view over VoxtralProcessor)."""
    from ambiscope.core.alm.families.voxtral import load_processor

    return load_processor(str(tiny), local_files_only=True)


@pytest.fixture(scope="module")
def plain(tiny):
    """What AutoProcessor loads: transformers' own VoxtralProcessor."""
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(tiny)


def _wav_b64(seconds: float) -> str:
    import soundfile as sf

    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    sf.write(
        buf,
        (0.1 * rng.standard_normal(int(16000 * seconds))).astype(np.float32),
        16000,
        format="WAV",
        subtype="FLOAT",
    )
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _user(text: str, seconds: float = 2.5) -> list[dict]:
    family = FAMILIES.get("voxtral")
    return build_messages(family, text, None, _wav_b64(seconds))


def test_tekken_layout_matches_the_processor_and_model(tiny, processor) -> None:
    from transformers import AutoConfig, VoxtralProcessor
    from transformers.tokenization_mistral_common import MistralCommonBackend

    tok = processor.tokenizer
    assert isinstance(processor, VoxtralProcessor)
    assert isinstance(tok, MistralCommonBackend)
    # VoxtralProcessor hard-codes [AUDIO] = 24; the config must agree.
    assert processor.audio_token_id == 24 == AutoConfig.from_pretrained(tiny).audio_token_id
    assert tok.convert_tokens_to_ids(["<s>", "</s>", "[BEGIN_AUDIO]", "[TRANSCRIBE]"]) == [
        1,
        2,
        25,
        34,
    ]
    assert tok.eos_token_id == 2


def test_every_yes_no_spelling_is_one_distinct_token(processor) -> None:
    ids = [processor.tokenizer.encode(w, add_special_tokens=False) for w in YES_NO]
    assert all(len(i) == 1 for i in ids), dict(zip(YES_NO, ids, strict=True))
    assert len({i[0] for i in ids}) == len(YES_NO)


def test_processor_ids_are_mistral_commons_own(processor) -> None:
    """The processor adds nothing of its own: ids equal mistral-common's instruct encoding."""
    from mistral_common.protocol.instruct.chunk import AudioChunk, TextChunk
    from mistral_common.protocol.instruct.messages import UserMessage
    from mistral_common.protocol.instruct.request import ChatCompletionRequest
    from mistral_common.tokens.tokenizers.audio import Audio

    messages = _user("Which emotion does the speaker express?")
    batch = processor.apply_chat_template(
        messages, tokenize=True, return_dict=True, return_tensors="pt", add_generation_prompt=True
    )
    audio = Audio.from_base64(messages[0]["content"][0]["base64"])
    request = ChatCompletionRequest(
        messages=[
            UserMessage(
                content=[
                    AudioChunk.from_audio(audio),
                    TextChunk(text="Which emotion does the speaker express?"),
                ]
            )
        ]
    )
    want = processor.tokenizer.tokenizer.encode_chat_completion(request).tokens
    ids = batch["input_ids"][0].tolist()
    assert ids == want
    # <s>[INST][BEGIN_AUDIO] + 375 [AUDIO] (one 30 s chunk at 12.5 Hz) + text + [/INST]
    assert ids[:3] == [1, 3, 25] and ids[-1] == 4
    assert ids.count(24) == 375
    assert tuple(batch["input_features"].shape) == (1, 128, 3000)


def test_long_audio_is_split_into_30_s_chunks(processor) -> None:
    batch = processor.apply_chat_template(
        _user("Describe it.", seconds=31.0),
        tokenize=True,
        return_dict=True,
        return_tensors="pt",
        add_generation_prompt=True,
    )
    assert tuple(batch["input_features"].shape) == (2, 128, 3000)
    assert batch["input_ids"][0].tolist().count(24) == 750


def test_system_text_goes_into_the_user_turn(processor) -> None:
    """Tokenizer v7 refuses a system message next to audio, hence system_prompt=False."""
    family = FAMILIES.get("voxtral")
    assert family.system_prompt is False
    audio = {"type": "audio", "base64": _wav_b64(1.0)}
    with_system = [
        {"role": "system", "content": "You are an expert listener."},
        {"role": "user", "content": [audio, {"type": "text", "text": "Which emotion?"}]},
    ]
    with pytest.raises(ValueError, match="system"):
        processor.apply_chat_template(with_system, tokenize=True, return_dict=True)
    messages = build_messages(family, "Which emotion?", "You are an expert listener.", "b64")
    assert [m["role"] for m in messages] == ["user"]
    assert messages[0]["content"][1]["text"] == "You are an expert listener.\n\nWhich emotion?"


def test_end_of_turn_string_is_the_eos_id(processor, plain) -> None:
    """Plain mistral-common encodes the *string* "</s>" as bytes; the family's tokenizer
    maps it to the special id 2, so the family's end_of_turn means the EOS."""
    assert FAMILIES.get("voxtral").end_of_turn == "</s>"
    assert plain.tokenizer.encode("</s>", add_special_tokens=False) != [2]
    assert processor.tokenizer.encode("</s>", add_special_tokens=False) == [2]


def test_same_ids_as_transformers_own_processor(processor, plain) -> None:
    messages = _user("Which emotion does the speaker express?")
    kwargs = {"tokenize": True, "return_dict": True, "return_tensors": "pt"}
    ours = processor.apply_chat_template(messages, add_generation_prompt=True, **kwargs)
    theirs = plain.apply_chat_template(messages, add_generation_prompt=True, **kwargs)
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    for text in ("Yes", " No", "Final answer: neutral", "x\n\ny"):
        assert processor.tokenizer.encode(text, add_special_tokens=False) == (
            plain.tokenizer.encode(text, add_special_tokens=False)
        )


@pytest.mark.parametrize("prefix", ["", "Answer:"])
def test_text_view_reencodes_to_the_prompt_ids(processor, prefix: str) -> None:
    """The rendered prompt (no features computed) re-encodes to exactly the processor's
    ids: what lets the backend extend a clip's audio prefix by text alone."""
    messages = _user("You are an expert listener.\n\nWhich emotion?")
    kwargs: dict = {"continue_final_message": True} if prefix else {"add_generation_prompt": True}
    if prefix:
        messages = [*messages, {"role": "assistant", "content": [{"type": "text", "text": prefix}]}]
    text = processor.apply_chat_template(messages, tokenize=False, **kwargs)
    assert isinstance(text, str) and text.startswith("<s>[INST][BEGIN_AUDIO][AUDIO]")
    assert text.endswith("[/INST]" + prefix)
    batch = processor.apply_chat_template(
        messages, tokenize=True, return_dict=True, return_tensors="pt", **kwargs
    )
    assert processor.tokenizer.encode(text, add_special_tokens=False) == (
        batch["input_ids"][0].tolist()
    )


def test_assistant_prefix_continues_without_end_of_turn(processor) -> None:
    messages = _user("Which emotion?")
    answer = {"role": "assistant", "content": [{"type": "text", "text": "Answer:"}]}
    batch = processor.apply_chat_template(
        [*messages, answer],
        tokenize=True,
        return_dict=True,
        return_tensors="pt",
        continue_final_message=True,
    )
    ids = batch["input_ids"][0].tolist()
    prefix = processor.tokenizer.encode("Answer:", add_special_tokens=False)
    assert ids[-len(prefix) - 1 :] == [4, *prefix]
