"""Per-family loading, prompt and audio placement for the transformers backend.

Every ALM family wants the audio in its own place and shape: Qwen2-Audio takes HF chat
content parts and a ``<|AUDIO|>`` run expanded by its processor, Granite Speech wants a literal
``<|audio|>`` tag inside a string message, Voxtral's processor tokenizes through mistral-common
and refuses raw audio tags, the Omni models wrap a "thinker" text model inside a speech
generator and ship processors that drag in video parts. That knowledge lives here, ONE entry
per family, ONE file per family in this package (``FAMILIES`` discovers them), keyed by
``config.model_type``, so the backend's sampling/scoring code stays family-agnostic.

An entry may name (lazily, as ``"module:attr"``):

* ``processor``: a function ``(source, **from_pretrained_kwargs) -> processor`` that assembles
  an audio+text processor from the checkpoint's tokenizer, feature extractor and chat
  template, for families whose ``AutoProcessor`` would import image/video stacks
  (torchvision, timm) that an audio workbench does not need;
* ``tiny``: a function ``(out_dir, seed) -> Path`` writing a random-weight checkpoint of the
  family offline in seconds (``ambiscope make-tiny-model OUT --family NAME``); it raises
  :class:`~ambiscope.core.alm.tiny.TinyUnavailable` with the exact reason when this machine
  cannot build one.

Unknown families fall back to :data:`GENERIC`: the HF chat format
``[{"type": "audio", "audio": <array>}, {"type": "text", "text": ...}]`` rendered and
tokenized by ``processor.apply_chat_template(tokenize=True)``.

This package is import-light (no torch): the backend and the tiny builders import the heavy
parts inside functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from ambiscope.core.registry import Registry

Render = Literal["template", "text", "placeholder"]


@dataclass(frozen=True)
class Family:
    """How to load one model family and turn (audio, ChatPrompt) into its inputs.

    name: the registry name (``--family`` of ``make-tiny-model``).
    model_types: the ``config.model_type`` values it covers.
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
    end_of_turn: the marker that closes an assistant turn (label scoring appends its
        tokens); ``None`` = infer from the chat template, else the tokenizer's EOS.
    audio_encoder: dotted path from the loaded model to its audio encoder module
        (tests and benches count its calls: encode-once means one per clip).
    auto_class: the transformers class that loads the checkpoint (an Auto class, or a
        model class where the Auto class would load more than the text model, e.g. the
        Omni thinker without its speech generator).
    encode_once: prefill the prompt + audio once and reuse the KV cache for N samples,
        label scoring and verifier prompts (else plain ``generate``/full forwards).
    max_audio_seconds: overrides the feature extractor's window (``None`` = use it).
    processor: ``"module:attr"`` assembling an audio+text processor (see the module doc).
    prepare_model: ``"module:attr"`` called as ``(model, source, **from_pretrained_kwargs)``
        right after loading, for weights a checkpoint keeps outside ``from_pretrained``'s
        reach or switches per call (Phi-4's speech LoRA, Granite Speech's LoRA).
    tiny: ``"module:attr"`` building a tiny random-weight checkpoint (see the module doc).
    extra: the pip extra a family needs beyond the base install (``ambiscope[voxtral]``).
    verified: its tiny checkpoint runs end to end in the test-suite.
    """

    name: str
    model_types: tuple[str, ...]
    render: Render = "template"
    audio_key: str = "audio"
    audio_first: bool = True
    system_prompt: bool = True
    placeholder: str | None = None
    pass_sampling_rate: bool = True
    end_of_turn: str | None = None
    audio_encoder: str = ""
    auto_class: str = "AutoModelForMultimodalLM"
    encode_once: bool = True
    max_audio_seconds: float | None = None
    processor: str | None = None
    prepare_model: str | None = None
    tiny: str | None = None
    extra: str | None = None
    verified: bool = False
    notes: str = ""


FAMILIES: Registry[Family] = Registry("model family", discover=("ambiscope.core.alm.families",))
"""Family name -> entry; one module per family in this package registers itself."""


_BY_TYPE: dict[str, Family] = {}


def register_family(family: Family) -> Family:
    """Add ``family`` to :data:`FAMILIES` (a model type may belong to one family only)."""
    for model_type in family.model_types:
        if model_type in _BY_TYPE:
            raise ValueError(
                f"model type {model_type!r} of family {family.name!r} is already "
                f"claimed by {_BY_TYPE[model_type].name!r}"
            )
    FAMILIES.add(family.name, family, model_types=family.model_types, tiny=bool(family.tiny))
    _BY_TYPE.update(dict.fromkeys(family.model_types, family))
    return family


GENERIC = Family(
    name="generic",
    model_types=(),
    render="template",
    encode_once=True,
    notes="Unknown family: generic HF chat format, audio part first, AutoModelForMultimodalLM.",
)


def family_for(model_type: str | None) -> Family:
    """The family entry for a ``config.model_type`` (GENERIC when unknown)."""
    FAMILIES.names()  # discovers the family modules on first use
    return _BY_TYPE.get(model_type or "", GENERIC)


def tiny_families() -> tuple[str, ...]:
    """Families that can build a tiny random-weight checkpoint."""
    return tuple(name for name in FAMILIES.names() if FAMILIES.meta(name)["tiny"])


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
            "name": f.name,
            "model_types": list(f.model_types),
            "render": f.render,
            "audio_key": f.audio_key,
            "auto_class": f.auto_class,
            "encode_once": f.encode_once,
            "tiny": bool(f.tiny),
            "extra": f.extra,
            "verified": f.verified,
            "notes": f.notes,
        }
        for f in (*(fam for _, fam in FAMILIES.items()), GENERIC)
    ]
