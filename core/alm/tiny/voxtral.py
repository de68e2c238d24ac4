"""A tiny random-weight Voxtral checkpoint with a Tekken tokenizer, built offline in seconds.

Its files are the hub repo's (``config.json``, ``generation_config.json``, weights,
``tekken.json``, ``preprocessor_config.json``), so it loads as ``mistralai/Voxtral-Mini-3B-2507``
does: ``AutoProcessor`` gives ``VoxtralProcessor`` (``MistralCommonBackend`` over ``tekken.json``
+ ``WhisperFeatureExtractor``), the family's ``load_processor`` the same with a text view, and
``AutoModelForMultimodalLM`` gives ``VoxtralForConditionalGeneration``. Prompts are built by
mistral-common's instruct tokenizer, as for the real model: there is no Jinja template.

Realistic: the Tekken file layout (1000 special tokens first, ``[AUDIO]`` = 24 as the processor
hard-codes, ``[BEGIN_AUDIO]`` = 25, ``[TRANSCRIBE]`` = 34; byte-level BPE ranks over Tekken's
split pattern; tokenizer version v7, under which a system prompt cannot accompany audio), the
audio frontend (16 kHz, 128 mel bins, audio padded to 30 s chunks of 3000 frames, 375 audio
tokens per chunk at 12.5 Hz: the encoder's 1500 positions grouped by 4 in the projector).
Tiny: widths 64, 2 + 2 layers, ~650 BPE tokens after the 1000 specials.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from ambiscope.core.alm.tiny import TinyUnavailable
from ambiscope.core.alm.tiny.common import (
    INIT_RANGE,
    WORDS,
    random_model,
    save_model,
)

# Tekken's pre-tokenizer split (tiktoken pat_str) of Mistral's tekken.json files.
PATTERN = (
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|"
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|"
    r"\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
NUM_SPECIAL = 1000
# Named special tokens by rank; the other ranks below NUM_SPECIAL are <SPECIAL_i> fillers.
SPECIALS = {
    0: "<unk>",
    1: "<s>",
    2: "</s>",
    3: "[INST]",
    4: "[/INST]",
    5: "[AVAILABLE_TOOLS]",
    6: "[/AVAILABLE_TOOLS]",
    7: "[TOOL_RESULTS]",
    8: "[/TOOL_RESULTS]",
    9: "[TOOL_CALLS]",
    10: "[IMG]",
    11: "<pad>",
    12: "[IMG_BREAK]",
    13: "[IMG_END]",
    14: "[PREFIX]",
    15: "[MIDDLE]",
    16: "[SUFFIX]",
    17: "[SYSTEM_PROMPT]",
    18: "[/SYSTEM_PROMPT]",
    19: "[TOOL_CONTENT]",
    24: "[AUDIO]",
    25: "[BEGIN_AUDIO]",
    32: "[ARGS]",
    33: "[CALL_ID]",
    34: "[TRANSCRIBE]",
}
AUDIO_TOKEN_ID = 24
_PUNCT = "{ } [ ] \" : , . ! ? ( ) 0 1 2 3 4 5 6 7 8 9 - _ ' ; /"


def _byte_decoder() -> dict[str, int]:
    """GPT-2's printable stand-in character -> byte (undoes the ByteLevel pre-tokenizer)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1)]
    printable += range(ord("®"), ord("ÿ") + 1)
    chars, extra = {}, 0
    for b in range(256):
        if b in printable:
            chars[chr(b)] = b
        else:
            chars[chr(256 + extra)] = b
            extra += 1
    return chars


def _corpus() -> list[str]:
    """Each word alone, after a space, in JSON and after 'Final answer:', so all get merged."""
    words = WORDS.split()
    lines = [" ".join(words), "Answer: Yes", "Answer: No", "Final answer: neutral"]
    for w in words:
        lines += [w, f" {w}", f'{{"{w}": 0.5, "other": 0.5}}', f"Final answer: {w}"]
    return (lines + _PUNCT.split(" ")) * 3


def _bpe_ranks(vocab_size: int = 1024) -> list[bytes]:
    """Byte-level BPE over Tekken's split pattern: token bytes in rank order (bytes first)."""
    from tokenizers import Regex, Tokenizer, pre_tokenizers, trainers
    from tokenizers.models import BPE

    tok = Tokenizer(BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=1,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)
    decode = _byte_decoder()
    ranks = [bytes([b]) for b in range(256)]
    for merge in json.loads(tok.to_str())["model"]["merges"]:
        left, right = merge if isinstance(merge, list) else merge.split(" ", 1)
        ranks.append(bytes(decode[c] for c in left + right))
    return ranks


def tekken_json() -> dict[str, Any]:
    """A Voxtral-layout tekken.json: v7 config, 1000 specials, the BPE vocab, audio config."""
    specials = [
        {"rank": r, "token_str": SPECIALS.get(r, f"<SPECIAL_{r}>"), "is_control": True}
        for r in range(max(SPECIALS) + 1)
    ]
    vocab = []
    for rank, token in enumerate(_bpe_ranks()):
        try:
            text: str | None = token.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        vocab.append(
            {"rank": rank, "token_bytes": base64.b64encode(token).decode(), "token_str": text}
        )
    return {
        "config": {
            "pattern": PATTERN,
            "num_vocab_tokens": len(vocab),
            "default_vocab_size": NUM_SPECIAL + len(vocab),
            "default_num_special_tokens": NUM_SPECIAL,
            "version": "v7",
        },
        "vocab": vocab,
        "special_tokens": specials,
        "audio": {
            "sampling_rate": 16000,
            "frame_rate": 12.5,
            "audio_encoding_config": {"num_mel_bins": 128, "hop_length": 160, "window_size": 400},
            "chunk_length_s": 30.0,
        },
    }


def _model_config(vocab_size: int):
    from transformers import VoxtralConfig

    text_config = {
        "model_type": "llama",
        "vocab_size": vocab_size,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 16,
        "max_position_embeddings": 32768,
        "tie_word_embeddings": False,
        "initializer_range": INIT_RANGE,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "pad_token_id": 11,
    }
    # The projector regroups 4 encoder frames into one LM position (intermediate = 4 x hidden).
    audio_config = {
        "model_type": "voxtral_encoder",
        "num_mel_bins": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "hidden_size": 64,
        "intermediate_size": 256,
        "max_source_positions": 1500,
        "initializer_range": INIT_RANGE,
    }
    return VoxtralConfig(
        audio_config=audio_config,
        text_config=text_config,
        audio_token_id=AUDIO_TOKEN_ID,
        initializer_range=INIT_RANGE,
    )


def build(out: Path, seed: int = 0) -> Path:
    """Write a random-weight Voxtral checkpoint + tekken.json + processor to ``out``; return it.

    Deterministic for a seed. Raises :class:`TinyUnavailable` without mistral-common (the
    ``voxtral`` extra), which Voxtral's tokenizer needs.
    """
    from transformers.utils import is_mistral_common_available

    if not is_mistral_common_available():
        raise TinyUnavailable(
            "Voxtral tokenizes through mistral-common (with Pillow); "
            "install the extra: pip install 'ambiscope[voxtral]'"
        )
    from transformers import (
        VoxtralForConditionalGeneration,
        WhisperFeatureExtractor,
    )

    data = tekken_json()
    tekken = out / "tekken.json"
    tekken.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    vocab_size = data["config"]["default_vocab_size"]
    model = random_model(VoxtralForConditionalGeneration, _model_config(vocab_size), seed)
    # Voxtral-Mini-3B-2507's generation_config.json token ids.
    save_model(model, out, bos_token_id=1, eos_token_id=2, pad_token_id=11)
    # The hub repo's processor files: tekken.json (above) and preprocessor_config.json
    # naming the processor class, no processor_config.json or tokenizer_config.json.
    feature_extractor = WhisperFeatureExtractor(
        feature_size=128, sampling_rate=16000, hop_length=160, chunk_length=30, n_fft=400
    )
    feature_extractor.processor_class = "VoxtralProcessor"
    feature_extractor.save_pretrained(out)
    return out
