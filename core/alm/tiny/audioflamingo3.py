"""A tiny random-weight Audio Flamingo 3 checkpoint, built offline in about a second.

It loads through the code paths ``nvidia/audio-flamingo-3-hf`` takes: ``AutoProcessor``
(``AudioFlamingo3Processor``: Qwen2 tokenizer + ``WhisperFeatureExtractor`` + the hub's chat
template) and ``AutoModelForSeq2SeqLM`` (``AudioFlamingo3ForConditionalGeneration``).

Realistic: 16 kHz, 128 mel bins, 30 s windows (the processor cuts a clip into windows and
expands one ``<sound>`` per pooled encoder frame: 2.5 s -> 63 placeholders), the chat
template of the converted hub checkpoint (one ``<sound>`` before the user text, default
system prompt) and a byte-level BPE with Qwen2's pre-tokenizer. Tiny: widths 64, 2 + 2 layers,
~650 tokens.
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

# The processor chat template written by transformers' convert_audioflamingo3_to_hf.py (what
# nvidia/audio-flamingo-3-hf ships): the audio part becomes ONE <sound> before the text, which
# the processor expands to the clip's pooled frame count.
CHAT_TEMPLATE = (
    "{% if messages[0]['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}"
    "{% for m in messages if m['content'] is not none %}"
    "<|im_start|>{{ m['role'] }}\n"
    "{% if m['content'] is string %}"
    "{{ m['content'] }}"
    "{% else %}"
    "{% set audio = namespace(found=False) %}"
    "{% set text_buf = namespace(v='') %}"
    "{% for c in m['content'] %}"
    "{% if c.get('type') == 'audio' or 'audio' in c %}"
    "{% set audio.found = True %}"
    "{% elif c.get('type') == 'text' or 'text' in c %}"
    "{% set text_buf.v = text_buf.v + c['text'] %}"
    "{% endif %}"
    "{% endfor %}"
    "{% if audio.found %}{{ '<sound>' }}{% endif %}{{ text_buf.v }}"
    "{% endif %}"
    "<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}"
    "<|im_start|>assistant\n"
    "{% endif %}"
)

SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<sound>")


def _model_config(tokenizer):
    from transformers import AudioFlamingo3Config

    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    text_config = qwen2_text_config(
        len(tokenizer),
        bos=ids["<|endoftext|>"],
        eos=ids["<|im_end|>"],
        pad=ids["<|endoftext|>"],
        max_positions=8192,
    )
    audio_config = {
        "model_type": "audioflamingo3_encoder",
        "num_mel_bins": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "intermediate_size": 128,
        "hidden_size": 64,
        "max_source_positions": 1500,
        "initializer_range": INIT_RANGE,
    }
    return AudioFlamingo3Config(
        audio_config=audio_config,
        text_config=text_config,
        audio_token_id=ids["<sound>"],
        initializer_range=INIT_RANGE,
    )


def build(out: Path, seed: int = 0) -> Path:
    """Write a random-weight Audio Flamingo 3 checkpoint + processor to ``out``; return it.

    Deterministic for a seed (deterministic tokenizer training, weights from a forked RNG).
    """
    from transformers import (
        AudioFlamingo3ForConditionalGeneration,
        AudioFlamingo3Processor,
        WhisperFeatureExtractor,
    )

    tokenizer = qwen2_tokenizer(
        SPECIAL_TOKENS, CHAT_TEMPLATE, eos="<|im_end|>", pad="<|endoftext|>"
    )
    model = random_model(AudioFlamingo3ForConditionalGeneration, _model_config(tokenizer), seed)
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    eot = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    # The hub generation_config.json's token ids, minus its sampling defaults (ambiscope
    # passes the run's sampling parameters explicitly).
    save_model(model, out, bos_token_id=eot, eos_token_id=[im_end, eot], pad_token_id=eot)
    feature_extractor = WhisperFeatureExtractor(feature_size=128, return_attention_mask=True)
    processor = AudioFlamingo3Processor(
        feature_extractor=feature_extractor, tokenizer=tokenizer, chat_template=CHAT_TEMPLATE
    )
    processor.save_pretrained(out)
    return out
