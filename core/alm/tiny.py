"""A tiny random-weight Qwen2-Audio checkpoint, built offline in well under a second.

Real ALM weights cannot be downloaded in tests, CI or a fresh demo, yet the transformers
backend (encode-once sampling, label scoring, verifier scores) must be exercised end to end
through exactly the code paths a real checkpoint takes: ``AutoProcessor`` + chat template +
``WhisperFeatureExtractor`` + ``AutoModelForMultimodalLM`` + ``generate``. This module writes
such a checkpoint with random weights. Its answers are gibberish; only the plumbing is real.

What is deliberately *realistic* (it changes timings, so benchmarks stay honest):

* the audio frontend: 16 kHz, 128 mel bins, 30 s Whisper windows (3000 frames -> 1500 encoder
  positions), exactly as Qwen2-Audio; every clip is padded to 30 s by the processor, so the
  audio encoder always runs over 1500 positions, as in the real model;
* the chat template and special tokens (``<|im_start|>``, ``<|im_end|>``, ``<|endoftext|>``,
  ``<|audio_bos|>``, ``<|AUDIO|>``, ``<|audio_eos|>``), and a byte-level BPE tokenizer with
  Qwen2's pre-tokenizer, so prompt/label token boundaries behave like the real tokenizer's.

What is tiny: widths (64), depths (2 + 2 layers) and the vocabulary (~650 tokens); 362k
parameters in all. Weights are drawn with a larger-than-usual init range so the random model
has peaked next-token distributions that depend on the audio (see ``_INIT_RANGE``).
"""

from __future__ import annotations

import json
from pathlib import Path

# Qwen2-Audio-7B-Instruct's template, restructured only to test the content part's `type`
# (the HF chat format) besides the legacy `audio`/`audio_url` keys.
CHAT_TEMPLATE = (
    "{% set audio_count = namespace(value=0) %}"
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}"
    "{{ message['content'] }}<|im_end|>\n"
    "{% else %}"
    "{% for content in message['content'] %}"
    "{% if content['type'] == 'audio' or 'audio' in content or 'audio_url' in content %}"
    "{% set audio_count.value = audio_count.value + 1 %}"
    "Audio {{ audio_count.value }}: <|audio_bos|><|AUDIO|><|audio_eos|>\n"
    "{% elif 'text' in content %}"
    "{{ content['text'] }}"
    "{% endif %}"
    "{% endfor %}"
    "<|im_end|>\n"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|audio_bos|>",
    "<|AUDIO|>",
    "<|audio_eos|>",
)

# Words the prompts, parsers and label sets use, so they tokenize into few (mostly single)
# tokens as they would with a real 150k-token vocabulary.
_WORDS = (
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
# Larger than the usual 0.02 so the random model's next-token distributions are peaked
# (entropy ~4 nats instead of ~log(vocab)) and depend visibly on the audio: sampling, beam
# and scoring tests then discriminate between right and wrong implementations.
_INIT_RANGE = 0.3
_PUNCT = "{ } [ ] \" : , . ! ? ( ) 0 1 2 3 4 5 6 7 8 9 0.0 0.1 0.25 0.5 1.0 - _ ' ; / \n"


def _corpus() -> list[str]:
    """Training lines: each word alone, after a space and in JSON, so all forms get merged."""
    words = _WORDS.split()
    lines = [" ".join(words), "Final answer: neutral", "Answer: Yes", "Answer: No"]
    for w in words:
        lines += [w, f" {w}", f'{{"{w}": 0.5, "other": 0.5}}', f"Final answer: {w}"]
    lines += _PUNCT.split(" ")
    # Repeat so every whole word is frequent enough to become one token.
    return lines * 3


def _train_tokenizer(vocab_size: int = 1024):
    """Byte-level BPE with Qwen2's normaliser, pre-tokenizer and decoder, trained in ms."""
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
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)
    return tok


def _hf_tokenizer():
    """Wrap the trained BPE as transformers' Qwen2Tokenizer (what AutoProcessor expects)."""
    from transformers.models.qwen2.tokenization_qwen2 import Qwen2Tokenizer

    raw = _train_tokenizer()
    vocab = raw.get_vocab()
    # tokenizers exposes the learnt merges only through the serialised model.
    merges = [
        tuple(m) if isinstance(m, list) else tuple(m.split(" ", 1))
        for m in json.loads(raw.to_str())["model"]["merges"]
    ]
    tokenizer = Qwen2Tokenizer(
        vocab=vocab,
        merges=merges,
        unk_token=None,
        bos_token=None,
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        extra_special_tokens=list(SPECIAL_TOKENS[1:]),
        model_max_length=32768,
        clean_up_tokenization_spaces=False,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def _model_config(tokenizer):
    from transformers import Qwen2AudioConfig

    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    text_config = {
        "model_type": "qwen2",
        "vocab_size": len(tokenizer),
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 4096,
        "tie_word_embeddings": False,
        "initializer_range": _INIT_RANGE,
        "bos_token_id": ids["<|endoftext|>"],
        "eos_token_id": ids["<|endoftext|>"],
        "pad_token_id": ids["<|endoftext|>"],
    }
    audio_config = {
        "model_type": "qwen2_audio_encoder",
        "num_mel_bins": 128,
        "encoder_layers": 2,
        "encoder_attention_heads": 4,
        "encoder_ffn_dim": 128,
        "d_model": 64,
        "max_source_positions": 1500,
        "initializer_range": _INIT_RANGE,
    }
    return Qwen2AudioConfig(
        audio_config=audio_config,
        text_config=text_config,
        audio_token_index=ids["<|AUDIO|>"],
        initializer_range=_INIT_RANGE,
    )


def build_tiny_model(out_dir: Path, *, seed: int = 0) -> Path:
    """Write a random-weight Qwen2-Audio checkpoint + processor to ``out_dir``; return it.

    ``AutoProcessor.from_pretrained(out_dir)`` and
    ``AutoModelForMultimodalLM.from_pretrained(out_dir)`` load it. Deterministic for a seed:
    the tokenizer training is deterministic and the weights come from ``torch.manual_seed``
    inside a forked RNG (the caller's global RNG state is left untouched).
    """
    import torch
    from transformers import (
        GenerationConfig,
        Qwen2AudioForConditionalGeneration,
        Qwen2AudioProcessor,
        WhisperFeatureExtractor,
    )
    from transformers.utils import logging as hf_logging

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = _hf_tokenizer()
    config = _model_config(tokenizer)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen2AudioForConditionalGeneration(config).eval()
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    eot = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    # Like Qwen2-Audio-7B-Instruct's generation_config.json, minus its sampling defaults
    # (top_k=20, top_p=0.5, repetition_penalty=1.1): ambiscope passes those explicitly.
    model.generation_config = GenerationConfig(
        bos_token_id=eot, eos_token_id=[eot, im_end], pad_token_id=eot
    )
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # no "Writing model shards" bar in the CLI/TUI
    try:
        model.save_pretrained(out)
    finally:
        if bars:
            hf_logging.enable_progress_bar()

    feature_extractor = WhisperFeatureExtractor(
        feature_size=128, sampling_rate=16000, hop_length=160, chunk_length=30, n_fft=400
    )
    processor = Qwen2AudioProcessor(
        feature_extractor=feature_extractor, tokenizer=tokenizer, chat_template=CHAT_TEMPLATE
    )
    processor.save_pretrained(out)
    return out
