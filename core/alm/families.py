"""Per-family prompt and audio placement for the transformers backend.

Every ALM family wants the audio in its own place and shape: Qwen2-Audio takes HF chat
content parts and a ``<|AUDIO|>`` run expanded by its processor, Granite Speech wants a literal
``<|audio|>`` tag inside a string message, Voxtral's processor tokenizes through mistral-common
and refuses raw audio tags, the Omni models wrap a "thinker" text model inside a speech
generator. This table keeps that knowledge in one place, keyed by ``config.model_type``, so the
backend's sampling/scoring code is family-agnostic.

Status (transformers 5.24):

* ``qwen2_audio`` is **verified**: it runs here end to end (tiny checkpoint from
  ``ambiscope.core.alm.tiny``), including encode-once equivalence with plain ``generate``.
* Every other entry is **inferred** from the installed transformers source (processor
  ``__call__``/``apply_chat_template`` signatures, modeling forward passes, docstring examples)
  and the model cards; none could be run without weights. ``encode_once`` is enabled only
  where the forward pass skips the audio encoder when the new ``input_ids`` hold no audio
  placeholder and positions are plain 1-D (so a KV cache prefilled once can be reused).
  The Omni models use 3-D multimodal RoPE with per-sequence deltas; they fall back to plain
  ``generate`` until someone verifies encode-once on real weights.
* Unknown families fall back to :data:`GENERIC`: the HF chat format
  ``[{"type": "audio", "audio": <array>}, {"type": "text", "text": ...}]`` rendered and
  tokenized by ``processor.apply_chat_template(tokenize=True)``.

This module is import-light (no torch); the backend builds the processor inputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Render = Literal["template", "text", "placeholder"]


@dataclass(frozen=True)
class Family:
    """How to turn (audio, ChatPrompt) into processor inputs for one model family.

    render:
        ``"template"``: ``processor.apply_chat_template(tokenize=True, return_dict=True)`` with
        the audio inside the messages (generic HF path; needed where the processor refuses
        audio tags in plain text, e.g. Voxtral). The assistant prefix uses
        ``continue_final_message``.
        ``"text"``: render the template to text (``tokenize=False``), append the assistant
        prefix, then ``processor(text=..., audio=...)``. Exact control over the prompt string.
        ``"placeholder"``: like ``"text"`` but the user message is a *string* holding the
        literal ``placeholder`` tag (templates that do not understand content parts).
    audio_key: the content-part key that carries the audio (``"audio"`` = numpy array;
        ``"base64"`` = base64 WAV, for processors that only take files/URLs/base64).
    audio_first: audio part before the instruction text (the training format of most ALMs).
    system_prompt: the template accepts a system message; otherwise the system text is
        prepended to the user text.
    pass_sampling_rate: pass ``sampling_rate=`` to the processor call (some feature
        extractors reject it).
    end_of_turn: the token that closes an assistant turn (label scoring appends it);
        ``None`` = infer from the chat template, else the tokenizer's EOS.
    submodule: attribute holding the text-generating model (``"thinker"`` for Omni).
    auto_classes: transformers Auto classes to try, in order, to load the checkpoint.
    encode_once: prefill the prompt + audio once and reuse the KV cache for N samples,
        label scoring and verifier prompts (else plain ``generate``/full forwards).
    max_audio_seconds: overrides the feature extractor's window (``None`` = use it).
    verified: ran end to end here (only ``qwen2_audio``).
    """

    model_types: tuple[str, ...]
    render: Render = "template"
    audio_key: str = "audio"
    audio_first: bool = True
    system_prompt: bool = True
    placeholder: str | None = None
    pass_sampling_rate: bool = True
    end_of_turn: str | None = None
    submodule: str | None = None
    auto_classes: tuple[str, ...] = ("AutoModelForMultimodalLM",)
    encode_once: bool = True
    max_audio_seconds: float | None = None
    verified: bool = False
    notes: str = ""


QWEN2_AUDIO = Family(
    model_types=("qwen2_audio",),
    render="text",
    end_of_turn="<|im_end|>",
    verified=True,
    notes=(
        "Verified with the tiny checkpoint. Template: 'Audio 1: <|audio_bos|><|AUDIO|>"
        "<|audio_eos|>\\n' then the text; every clip is padded to a 30 s Whisper window."
    ),
)

FAMILIES: tuple[Family, ...] = (
    QWEN2_AUDIO,
    Family(
        model_types=("qwen2_5_omni", "qwen2_5_omni_thinker"),
        render="template",
        end_of_turn="<|im_end|>",
        submodule="thinker",
        encode_once=False,
        notes=(
            "Inferred. Text comes from model.thinker; 3-D multimodal RoPE with cached "
            "rope_deltas, so encode-once is off until verified on real weights. The Omni "
            "system prompt is recommended by the model card for audio output only."
        ),
    ),
    Family(
        model_types=("qwen3_omni_moe", "qwen3_omni_moe_thinker"),
        render="template",
        end_of_turn="<|im_end|>",
        submodule="thinker",
        encode_once=False,
        notes="Inferred; same structure as Qwen2.5-Omni (thinker, 3-D RoPE).",
    ),
    Family(
        model_types=("voxtral",),
        render="template",
        audio_key="base64",
        system_prompt=False,
        end_of_turn="</s>",
        max_audio_seconds=1800.0,
        notes=(
            "Inferred. VoxtralProcessor tokenizes via mistral-common (needs the "
            "mistral-common package), rejects audio tags in plain text and takes audio as "
            "url/path/base64 content parts; roles user/assistant only. Audio is split into "
            "30 s windows, so long clips are accepted."
        ),
    ),
    Family(
        model_types=("gemma3n",),
        render="template",
        end_of_turn="<end_of_turn>",
        notes=(
            "Inferred. Gemma3nProcessor(images, text, audio); audio content parts are arrays "
            "or paths; USM feature extractor pads to at most 30 s (max_length=480000)."
        ),
        max_audio_seconds=30.0,
    ),
    Family(
        model_types=("granite_speech", "granite_speech_plus"),
        render="placeholder",
        placeholder="<|audio|>",
        pass_sampling_rate=False,
        end_of_turn="<|end_of_text|>",
        notes=(
            "Inferred from the model card: string message '<|audio|>' + instruction, "
            "processor(text, audio) without sampling_rate (16 kHz assumed)."
        ),
    ),
    Family(
        model_types=("phi4_multimodal",),
        render="template",
        end_of_turn="<|end|>",
        notes="Inferred. HF-native Phi4MultimodalProcessor (audio= kwarg, 16 kHz).",
    ),
    Family(
        model_types=("audioflamingo3", "musicflamingo"),
        render="template",
        end_of_turn="<|im_end|>",
        auto_classes=("AutoModelForMultimodalLM", "AutoModelForSeq2SeqLM"),
        max_audio_seconds=600.0,
        notes=(
            "Inferred. Registered under AutoModelForSeq2SeqLM in 5.24 (decoder-only Qwen2.5 "
            "LM behind it); processor windows audio in 30 s chunks up to max_audio_len=600 s."
        ),
    ),
)

GENERIC = Family(
    model_types=(),
    render="template",
    auto_classes=(
        "AutoModelForMultimodalLM",
        "AutoModelForImageTextToText",
        "AutoModelForSpeechSeq2Seq",
        "AutoModelForCausalLM",
    ),
    encode_once=True,
    notes="Unknown family: generic HF chat format, audio part first.",
)

_BY_TYPE = {t: fam for fam in FAMILIES for t in fam.model_types}


def family_for(model_type: str | None) -> Family:
    """The family entry for a ``config.model_type`` (GENERIC when unknown)."""
    return _BY_TYPE.get(model_type or "", GENERIC)


def build_messages(family: Family, user: str, system: str | None, audio: Any) -> list[dict]:
    """Chat messages for one (audio, instruction) turn in the family's format.

    ``audio`` is whatever goes under ``family.audio_key`` (array, path, base64 string).
    """
    messages: list[dict] = []
    if system and family.system_prompt:
        messages.append({"role": "system", "content": system})
    elif system:
        user = f"{system}\n\n{user}"
    if family.render == "placeholder":
        tag = family.placeholder or ""
        content: Any = f"{tag}{user}" if family.audio_first else f"{user}{tag}"
    else:
        parts = [{"type": "audio", family.audio_key: audio}, {"type": "text", "text": user}]
        content = parts if family.audio_first else parts[::-1]
    messages.append({"role": "user", "content": content})
    return messages


def describe_families() -> list[dict[str, Any]]:
    """The table as plain dicts (for `ambiscope` diagnostics and docs)."""
    return [
        {
            "model_types": list(f.model_types),
            "render": f.render,
            "audio_key": f.audio_key,
            "audio_first": f.audio_first,
            "system_prompt": f.system_prompt,
            "encode_once": f.encode_once,
            "verified": f.verified,
            "notes": f.notes,
        }
        for f in (*FAMILIES, GENERIC)
    ]
