"""Shared parts of the tiny checkpoints: a trained byte-level BPE, init range, quiet saving."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

# Larger than the usual 0.02 so the random model's next-token distributions are peaked
# (entropy ~4 nats instead of ~log(vocab)) and depend visibly on the audio: sampling, beam
# and scoring tests then discriminate between right and wrong implementations.
INIT_RANGE = 0.3

# Words the prompts, parsers and label sets use, so they tokenize into few (mostly single)
# tokens as they would with a real 150k-token vocabulary.
WORDS = (
    "neutral happy sad angry fear fearful disgust disgusted surprise surprised calm contempt "
    "frustrated excited other unknown happiness sadness anger joy boredom "
    "Neutral Happy Sad Angry Fear Disgust Surprise Calm "
    "Yes No yes no YES NO Final answer Answer Emotion emotion label labels probability "
    "probabilities distribution reasoning Reasoning step think speaker voice tone pitch "
    "sounds the a an is are of to and or in it this that what which how How What Which "
    "Listen listen to audio clip speech Is correct Respond respond with one word only JSON "
    "object mapping each between sum must You helpful assistant system user "
    "Audio Given candidate judge likely most The"
)
_PUNCT = "{ } [ ] \" : , . ! ? ( ) 0 1 2 3 4 5 6 7 8 9 0.0 0.1 0.25 0.5 1.0 - _ ' ; / \n"


def _corpus(words: str) -> list[str]:
    """Training lines: each word alone, after a space and in JSON, so all forms get merged."""
    split = words.split()
    lines = [" ".join(split), "Final answer: neutral", "Answer: Yes", "Answer: No"]
    for w in split:
        lines += [w, f" {w}", f'{{"{w}": 0.5, "other": 0.5}}', f"Final answer: {w}"]
    lines += _PUNCT.split(" ")
    # Repeat so every whole word is frequent enough to become one token.
    return lines * 3


def train_bpe(special_tokens: Sequence[str], *, words: str = WORDS, vocab_size: int = 1024):
    """Byte-level BPE with Qwen2's normaliser, pre-tokenizer and decoder, trained in ms.

    Returns a ``tokenizers.Tokenizer`` whose first ids are ``special_tokens`` in order.
    """
    from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers, trainers
    from tokenizers.models import BPE
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    tok = Tokenizer(BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=1,
        special_tokens=list(special_tokens),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(words), trainer=trainer)
    return tok


def vocab_and_merges(raw: Any) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """(vocab, merges) of a trained BPE (merges are only exposed through its JSON)."""
    merges = [
        tuple(m) if isinstance(m, list) else tuple(m.split(" ", 1))
        for m in json.loads(raw.to_str())["model"]["merges"]
    ]
    return raw.get_vocab(), merges


def qwen2_tokenizer(
    special_tokens: Sequence[str],
    chat_template: str | None,
    *,
    eos: str,
    pad: str,
    named: Mapping[str, str] | None = None,
    max_length: int = 32768,
):
    """A ``Qwen2Tokenizer`` over a freshly trained BPE with the family's special tokens.

    ``named``: special tokens the tokenizer knows by attribute (``audio_token`` ...), as
    the Omni hub tokenizers do; the other specials are added as additional ones.
    ``chat_template=None`` leaves the template to the processor (``chat_template.json``).
    """
    from transformers.models.qwen2.tokenization_qwen2 import Qwen2Tokenizer

    vocab, merges = vocab_and_merges(train_bpe(special_tokens))
    extra: Any = dict(named) if named else [t for t in special_tokens if t not in (eos, pad)]
    tokenizer = Qwen2Tokenizer(
        vocab=vocab,
        merges=merges,
        unk_token=None,
        bos_token=None,
        eos_token=eos,
        pad_token=pad,
        extra_special_tokens=extra,
        model_max_length=max_length,
        clean_up_tokenization_spaces=False,
    )
    if named:
        others = [t for t in special_tokens if t not in named.values()]
        tokenizer.add_special_tokens({"additional_special_tokens": others})
    if chat_template is not None:
        tokenizer.chat_template = chat_template
    return tokenizer


def qwen2_text_config(
    vocab_size: int, *, bos: int, eos: int, pad: int, max_positions: int
) -> dict[str, Any]:
    """The tiny Qwen2 decoder behind Qwen2-Audio and Audio Flamingo 3 (64 wide, 2 layers)."""
    return {
        "model_type": "qwen2",
        "vocab_size": vocab_size,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": max_positions,
        "tie_word_embeddings": False,
        "initializer_range": INIT_RANGE,
        "bos_token_id": bos,
        "eos_token_id": eos,
        "pad_token_id": pad,
    }


@contextlib.contextmanager
def quiet_progress() -> Iterator[None]:
    """No "Writing model shards" bars while saving (they garble the CLI and the TUI)."""
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if bars:
            hf_logging.enable_progress_bar()


def save_model(model: Any, out: Any, **generation: Any) -> None:
    """Save a tiny model with its ``generation_config.json`` (the hub file's token ids,
    never its sampling defaults: ambiscope passes the run's sampling explicitly)."""
    from transformers import GenerationConfig

    model.generation_config = GenerationConfig(**generation)
    with quiet_progress():
        model.save_pretrained(out)


def random_model(model_class: Any, config: Any, seed: int) -> Any:
    """``model_class(config)`` with weights from ``seed``, leaving the global RNG untouched."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return model_class(config).eval()
