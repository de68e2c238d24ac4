"""A tiny random-weight Qwen2.5-Omni checkpoint with the hub repo's layout, built offline.

``Qwen/Qwen2.5-Omni-7B`` is ONE checkpoint (``model_type`` ``qwen2_5_omni``) holding the
thinker (audio + vision encoders and the text LM), the talker (speech-token LM) and token2wav
(DiT + BigVGAN), plus ``spk_dict.pt`` (the talker's speaker presets). This builder writes
the same files with every part tiny, so loading it exercises exactly what loading the real
repo does: the full config, ``thinker.*`` weight prefixes next to ``talker.*`` /
``token2wav.*`` ones, the ``extra_special_tokens`` the processor reads its placeholder tokens
from, and a ``preprocessor_config.json`` that carries the Whisper feature extractor *and* the
Qwen2-VL image processor keys (as the hub file does).

Realistic: the chat template (verbatim from the hub), the special tokens in the hub's order,
128 mel bins at 16 kHz with Qwen2.5-Omni's conv-stride arithmetic (4 mel frames -> 1 audio
token, 25 tokens/s), its attention windows (``n_window``) and the audio-tower layout.
Tiny: widths 32-64, one or two layers per tower, a ~1k-token byte-level BPE. The feature
extractor's window is 30 s instead of the hub's 300 s: the processor pads every clip to the
full window, and 300 s of mel per call would dominate a CPU test run without changing what
reaches the model (the encoder only reads the clip's own frames).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ambiscope.core.alm.tiny.common import (
    INIT_RANGE,
    qwen2_tokenizer,
    random_model,
    save_model,
)

# Qwen/Qwen2.5-Omni-7B's chat template, verbatim (its chat_template.json).
CHAT_TEMPLATE = (
    "{% set audio_count = namespace(value=0) %}{% set image_count = namespace(value=0) %}"
    "{% set video_count = namespace(value=0) %}{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\n"
    "You are a helpful assistant.<|im_end|>\n{% endif %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_bos|><|IMAGE|><|vision_eos|>"
    "{% elif content['type'] == 'audio' or 'audio' in content or 'audio_url' in content %}"
    "{% set audio_count.value = audio_count.value + 1 %}"
    "{% if add_audio_id %}Audio {{ audio_count.value }}: {% endif %}"
    "<|audio_bos|><|AUDIO|><|audio_eos|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_bos|><|VIDEO|><|vision_eos|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# The hub tokenizer's added tokens in id order (151643...), then the talker's TTS markers.
SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|AUDIO|>",
    "<|audio_bos|>",
    "<|audio_eos|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_bos|>",
    "<|vision_eos|>",
    "<|vision_pad|>",
    "<|IMAGE|>",
    "<|VIDEO|>",
    "<tts_pad>",
    "<tts_text_bos>",
    "<tts_text_eod>",
)

# tokenizer_config.json "extra_special_tokens": the processor reads its tokens from these.
NAMED_TOKENS = {
    "image_token": "<|IMAGE|>",
    "audio_token": "<|AUDIO|>",
    "video_token": "<|VIDEO|>",
    "vision_bos_token": "<|vision_bos|>",
    "vision_eos_token": "<|vision_eos|>",
    "audio_bos_token": "<|audio_bos|>",
    "audio_eos_token": "<|audio_eos|>",
}

# The hub preprocessor_config.json's Qwen2-VL image processor keys (not used for audio).
IMAGE_PROCESSOR_KEYS: dict[str, Any] = {
    "image_processor_type": "Qwen2VLImageProcessor",
    "min_pixels": 3136,
    "max_pixels": 12845056,
    "patch_size": 14,
    "merge_size": 2,
    "temporal_patch_size": 2,
    "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_std": [0.26862954, 0.26130258, 0.27577711],
}

HIDDEN = 64
CODEC_VOCAB = 64  # talker codec vocabulary (the hub's 8448, shrunk)


def tokenizer():
    """A Qwen2Tokenizer over a freshly trained BPE with the hub's special and named tokens.

    No chat template: as on the hub, the template is the processor's (``chat_template.json``).
    """
    return qwen2_tokenizer(
        SPECIAL_TOKENS,
        None,
        eos="<|im_end|>",
        pad="<|endoftext|>",
        named=NAMED_TOKENS,
        max_length=32768,
    )


def feature_extractor():
    """Qwen2.5-Omni's Whisper frontend (128 mel bins, 16 kHz), with a 30 s window."""
    from transformers import WhisperFeatureExtractor

    return WhisperFeatureExtractor(
        feature_size=128,
        sampling_rate=16000,
        hop_length=160,
        chunk_length=30,
        n_fft=400,
        padding_value=0.0,
        dither=0.0,
        return_attention_mask=True,
    )


def _ids(tok) -> dict[str, int]:
    return {t: int(tok.convert_tokens_to_ids(t)) for t in SPECIAL_TOKENS}


def _config(tok):
    from transformers import Qwen2_5OmniConfig

    ids = _ids(tok)
    rope = {"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [2, 3, 3]}
    text = {
        "vocab_size": len(tok),
        "hidden_size": HIDDEN,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 4096,
        "rope_parameters": rope,
        "tie_word_embeddings": False,
        "initializer_range": INIT_RANGE,
    }
    thinker = {
        "audio_config": {
            "num_mel_bins": 128,
            "encoder_layers": 2,
            "encoder_attention_heads": 4,
            "encoder_ffn_dim": 128,
            "d_model": HIDDEN,
            "output_dim": HIDDEN,
            "max_source_positions": 1500,
            "n_window": 100,
            "initializer_range": INIT_RANGE,
        },
        "vision_config": {
            "depth": 1,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 2,
            "out_hidden_size": HIDDEN,
            "fullatt_block_indexes": [0],
            "initializer_range": INIT_RANGE,
        },
        "text_config": text,
        "audio_token_index": ids["<|AUDIO|>"],
        "image_token_index": ids["<|IMAGE|>"],
        "video_token_index": ids["<|VIDEO|>"],
        "audio_start_token_id": ids["<|audio_bos|>"],
        "audio_end_token_id": ids["<|audio_eos|>"],
        "vision_start_token_id": ids["<|vision_bos|>"],
        "vision_end_token_id": ids["<|vision_eos|>"],
        "vision_token_id": ids["<|vision_pad|>"],
        "user_token_id": int(tok.convert_tokens_to_ids("user")),
        "bos_token_id": ids["<|im_start|>"],
        "eos_token_id": ids["<|im_end|>"],
        "pad_token_id": ids["<|endoftext|>"],
        "initializer_range": INIT_RANGE,
    }
    talker = {
        "vocab_size": CODEC_VOCAB,
        "embedding_size": HIDDEN,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "head_dim": 16,
        "rope_parameters": {
            "rope_type": "default",
            "rope_theta": 1000000.0,
            "mrope_section": [2, 3, 3],
        },
        "audio_token_index": ids["<|AUDIO|>"],
        "image_token_index": ids["<|IMAGE|>"],
        "video_token_index": ids["<|VIDEO|>"],
        "audio_start_token_id": ids["<|audio_bos|>"],
        "audio_end_token_id": ids["<|audio_eos|>"],
        "vision_start_token_id": ids["<|vision_bos|>"],
        "vision_end_token_id": ids["<|vision_eos|>"],
        "tts_text_start_token_id": ids["<tts_text_bos>"],
        "tts_text_end_token_id": ids["<tts_text_eod>"],
        "tts_text_pad_token_id": ids["<tts_pad>"],
        "tts_codec_start_token_id": CODEC_VOCAB - 4,
        "tts_codec_end_token_id": CODEC_VOCAB - 3,
        "tts_codec_pad_token_id": CODEC_VOCAB - 5,
        "tts_codec_mask_token_id": CODEC_VOCAB - 1,
        "initializer_range": INIT_RANGE,
    }
    token2wav = {
        "dit_config": {
            "hidden_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "head_dim": 16,
            "emb_dim": 16,
            "num_embeds": CODEC_VOCAB,
            "look_ahead_layers": [0],
            "look_backward_layers": [0],
            "enc_emb_dim": 16,
            "enc_dim": 16,
            "enc_channels": [16, 16, 16, 16, 48],
            "enc_attention_channels": 8,
            "enc_se_channels": 8,
        },
        "bigvgan_config": {
            "upsample_initial_channel": 64,
            "resblock_kernel_sizes": [3],
            "resblock_dilation_sizes": [[1, 3, 5]],
            "upsample_rates": [5, 3, 2, 2, 2, 2],
            "upsample_kernel_sizes": [11, 7, 4, 4, 4, 4],
        },
    }
    return Qwen2_5OmniConfig(
        thinker_config=thinker,
        talker_config=talker,
        token2wav_config=token2wav,
        enable_audio_output=True,
    )


def build(out: Path, seed: int = 0) -> Path:
    """Write a random-weight Qwen2.5-Omni checkpoint (hub layout) to ``out``; return it."""
    import json

    import torch
    from transformers import Qwen2_5OmniForConditionalGeneration

    tok = tokenizer()
    config = _config(tok)
    model = random_model(Qwen2_5OmniForConditionalGeneration, config, seed)
    ids = _ids(tok)
    # Like the hub generation_config.json: stop at <|im_end|> or <|endoftext|>.
    save_model(
        model,
        out,
        eos_token_id=[ids["<|im_end|>"], ids["<|endoftext|>"]],
        pad_token_id=ids["<|endoftext|>"],
    )
    dit = config.token2wav_config.dit_config
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        speakers = {
            name: {
                "bos_token": ids["<tts_text_bos>"],
                "cond": torch.randn(1, dit.enc_emb_dim),
                "ref_mel": torch.randn(1, 30, dit.mel_dim),
            }
            for name in ("Chelsie", "Ethan")
        }
    torch.save(speakers, out / "spk_dict.pt")
    tok.save_pretrained(out)
    feature_extractor().save_pretrained(out)
    pre = out / "preprocessor_config.json"
    data = json.loads(pre.read_text())
    data.update(IMAGE_PROCESSOR_KEYS, processor_class="Qwen2_5OmniProcessor")
    pre.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    (out / "chat_template.json").write_text(
        json.dumps({"chat_template": CHAT_TEMPLATE}, indent=2) + "\n"
    )
    return out
