"""A tiny random-weight Qwen2-Audio checkpoint, built offline in well under a second.

It loads through exactly the code paths a real checkpoint takes: ``AutoProcessor`` + chat
template + ``WhisperFeatureExtractor`` + ``AutoModelForMultimodalLM`` + ``generate``.

What is deliberately *realistic* (it changes timings, so benchmarks stay honest):

* the audio frontend: 16 kHz, 128 mel bins, 30 s Whisper windows (3000 frames -> 1500 encoder
  positions), exactly as Qwen2-Audio; every clip is padded to 30 s by the processor, so the
  audio encoder always runs over 1500 positions, as in the real model;
* the chat template and special tokens (``<|im_start|>``, ``<|im_end|>``, ``<|endoftext|>``,
  ``<|audio_bos|>``, ``<|AUDIO|>``, ``<|audio_eos|>``), and a byte-level BPE tokenizer with
  Qwen2's pre-tokenizer, so prompt/label token boundaries behave like the real tokenizer's.

What is tiny: widths (64), depths (2 + 2 layers) and the vocabulary (~650 tokens); 362k
parameters in all. Weights are drawn with a larger-than-usual init range so the random model
has peaked next-token distributions that depend on the audio (see ``common.INIT_RANGE``).
"""

from __future__ import annotations

from pathlib import Path

from ambiscope.core.alm.tiny.common import (
    INIT_RANGE,
    qwen2_text_config,
    qwen2_tokenizer,
    random_model,
    save_model,
)

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


def _hf_tokenizer():
    """The trained BPE as transformers' Qwen2Tokenizer (what Qwen2AudioProcessor expects)."""
    return qwen2_tokenizer(SPECIAL_TOKENS, CHAT_TEMPLATE, eos="<|endoftext|>", pad="<|endoftext|>")


def _model_config(tokenizer):
    from transformers import Qwen2AudioConfig

    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    text_config = qwen2_text_config(
        len(tokenizer),
        bos=ids["<|endoftext|>"],
        eos=ids["<|endoftext|>"],
        pad=ids["<|endoftext|>"],
        max_positions=4096,
    )
    audio_config = {
        "model_type": "qwen2_audio_encoder",
        "num_mel_bins": 128,
        "encoder_layers": 2,
        "encoder_attention_heads": 4,
        "encoder_ffn_dim": 128,
        "d_model": 64,
        "max_source_positions": 1500,
        "initializer_range": INIT_RANGE,
    }
    return Qwen2AudioConfig(
        audio_config=audio_config,
        text_config=text_config,
        audio_token_index=ids["<|AUDIO|>"],
        initializer_range=INIT_RANGE,
    )


def build(out: Path, seed: int = 0) -> Path:
    """Write a random-weight Qwen2-Audio checkpoint + processor to ``out``; return it.

    ``AutoProcessor.from_pretrained(out)`` and ``AutoModelForMultimodalLM.from_pretrained(out)``
    load it. Deterministic for a seed: the tokenizer training is deterministic and the
    weights come from ``torch.manual_seed`` inside a forked RNG.
    """
    from transformers import (
        Qwen2AudioForConditionalGeneration,
        Qwen2AudioProcessor,
        WhisperFeatureExtractor,
    )

    tokenizer = _hf_tokenizer()
    model = random_model(Qwen2AudioForConditionalGeneration, _model_config(tokenizer), seed)
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    eot = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    # Like Qwen2-Audio-7B-Instruct's generation_config.json, minus its sampling defaults
    # (top_k=20, top_p=0.5, repetition_penalty=1.1): ambiscope passes those explicitly.
    save_model(model, out, bos_token_id=eot, eos_token_id=[eot, im_end], pad_token_id=eot)
    feature_extractor = WhisperFeatureExtractor(
        feature_size=128, sampling_rate=16000, hop_length=160, chunk_length=30, n_fft=400
    )
    processor = Qwen2AudioProcessor(
        feature_extractor=feature_extractor, tokenizer=tokenizer, chat_template=CHAT_TEMPLATE
    )
    processor.save_pretrained(out)
    return out
