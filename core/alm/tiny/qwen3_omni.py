"""A tiny random-weight Qwen3-Omni (MoE) checkpoint with the hub repo's layout, built offline.

``Qwen/Qwen3-Omni-30B-A3B-Instruct`` is ONE checkpoint (``model_type`` ``qwen3_omni_moe``)
holding the thinker (audio + vision encoders and a mixture-of-experts text LM), the talker
(MoE speech-codec LM with its code predictor) and code2wav. This builder writes the same
layout with every part tiny (4 experts of width 32, two routed per token), so loading it
exercises what loading the hub repo does: ``thinker.*`` weights next to ``talker.*`` /
``code2wav.*`` ones, the tokenizer's named special tokens (``<|audio_start|>``,
``<|audio_pad|>``, ``<|audio_end|>``), Qwen3-Omni's chunked audio-length arithmetic
(100 mel frames -> 13 audio tokens) and interleaved multimodal RoPE sections.

The feature extractor is the hub's (Whisper, 128 mel bins, 16 kHz, 300 s window); the
Qwen3-Omni processor pads to the longest clip, not to the window, so it costs nothing here.
"""

from __future__ import annotations

from pathlib import Path

from ambiscope.core.alm.tiny.common import (
    INIT_RANGE,
    qwen2_tokenizer,
    random_model,
    save_model,
)

# The Qwen3-Omni chat format for the content parts ambiscope sends (system text, audio,
# text); the hub template's tool-call and reasoning branches are not reproduced.
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' }}"
    "{%- if message['content'] is string %}{{- message['content'] }}"
    "{%- else %}{%- for content in message['content'] %}"
    "{%- if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{{- '<|vision_start|><|image_pad|><|vision_end|>' }}"
    "{%- elif content['type'] == 'audio' or 'audio' in content or 'audio_url' in content %}"
    "{{- '<|audio_start|><|audio_pad|><|audio_end|>' }}"
    "{%- elif content['type'] == 'video' or 'video' in content %}"
    "{{- '<|vision_start|><|video_pad|><|vision_end|>' }}"
    "{%- elif 'text' in content %}{{- content['text'] }}"
    "{%- endif %}{%- endfor %}{%- endif %}"
    "{{- '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

# The hub tokenizer's added tokens in id order (151643...).
SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
    "<|audio_start|>",
    "<|audio_end|>",
    "<tts_pad>",
    "<tts_text_bos>",
    "<tts_text_eod>",
    "<tts_text_bos_single>",
    "<|audio_pad|>",
)

# tokenizer_config.json's named tokens: the processor reads its placeholders from these.
NAMED_TOKENS = {
    "image_token": "<|image_pad|>",
    "audio_token": "<|audio_pad|>",
    "video_token": "<|video_pad|>",
    "vision_bos_token": "<|vision_start|>",
    "vision_eos_token": "<|vision_end|>",
    "audio_bos_token": "<|audio_start|>",
    "audio_eos_token": "<|audio_end|>",
}

HIDDEN = 64
CODEC_VOCAB = 64
CODE_GROUPS = 4


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
        max_length=65536,
    )


def feature_extractor():
    """Qwen3-Omni's Whisper frontend as on the hub (128 mel bins, 16 kHz, 300 s window)."""
    from transformers import WhisperFeatureExtractor

    return WhisperFeatureExtractor(
        feature_size=128,
        sampling_rate=16000,
        hop_length=160,
        chunk_length=300,
        n_fft=400,
        padding_value=0.0,
        dither=0.0,
        return_attention_mask=True,
    )


def _config(tok):
    from transformers import Qwen3OmniMoeConfig

    ids = {t: int(tok.convert_tokens_to_ids(t)) for t in SPECIAL_TOKENS}
    rope = {
        "rope_type": "default",
        "rope_theta": 1000000.0,
        "mrope_section": [2, 3, 3],
        "interleaved": True,
        "mrope_interleaved": True,
    }
    moe = {
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 16,
        "decoder_sparse_step": 1,
        "moe_intermediate_size": 32,
        "num_experts": 4,
        "num_experts_per_tok": 2,
        "max_position_embeddings": 4096,
        "rope_parameters": rope,
        "initializer_range": INIT_RANGE,
    }
    text = {
        **moe,
        "vocab_size": len(tok),
        "hidden_size": HIDDEN,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "tie_word_embeddings": False,
    }
    thinker = {
        "audio_config": {
            "num_mel_bins": 128,
            "encoder_layers": 2,
            "encoder_attention_heads": 4,
            "encoder_ffn_dim": 128,
            "d_model": HIDDEN,
            "output_dim": HIDDEN,
            "downsample_hidden_size": 32,
            "max_source_positions": 1500,
            "initializer_range": INIT_RANGE,
        },
        "vision_config": {
            "depth": 1,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 2,
            "out_hidden_size": HIDDEN,
            "num_position_embeddings": 16,
            "deepstack_visual_indexes": [0],
            "initializer_range": INIT_RANGE,
        },
        "text_config": text,
        "audio_token_id": ids["<|audio_pad|>"],
        "image_token_id": ids["<|image_pad|>"],
        "video_token_id": ids["<|video_pad|>"],
        "audio_start_token_id": ids["<|audio_start|>"],
        "audio_end_token_id": ids["<|audio_end|>"],
        "vision_start_token_id": ids["<|vision_start|>"],
        "vision_end_token_id": ids["<|vision_end|>"],
        "user_token_id": int(tok.convert_tokens_to_ids("user")),
        "initializer_range": INIT_RANGE,
    }
    talker = {
        "text_config": {
            **moe,
            "vocab_size": CODEC_VOCAB,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "shared_expert_intermediate_size": 32,
        },
        "code_predictor_config": {
            "vocab_size": CODEC_VOCAB,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "head_dim": 16,
            "num_code_groups": CODE_GROUPS,
            "initializer_range": INIT_RANGE,
        },
        "num_code_groups": CODE_GROUPS,
        "thinker_hidden_size": HIDDEN,
        "accept_hidden_layer": 1,
        "codec_pad_id": CODEC_VOCAB - 8,
        "codec_bos_id": CODEC_VOCAB - 7,
        "codec_eos_token_id": CODEC_VOCAB - 6,
        "codec_nothink_id": CODEC_VOCAB - 5,
        "codec_think_bos_id": CODEC_VOCAB - 4,
        "codec_think_eos_id": CODEC_VOCAB - 3,
        "audio_token_id": ids["<|audio_pad|>"],
        "image_token_id": ids["<|image_pad|>"],
        "video_token_id": ids["<|video_pad|>"],
        "vision_start_token_id": ids["<|vision_start|>"],
        "audio_start_token_id": ids["<|audio_start|>"],
        "spatial_merge_size": 2,
        "speaker_id": {"chelsie": CODEC_VOCAB - 2, "ethan": CODEC_VOCAB - 1},
        "initializer_range": INIT_RANGE,
    }
    code2wav = {
        "codebook_size": CODEC_VOCAB,
        "hidden_size": 32,
        "num_attention_heads": 2,
        "num_key_value_heads": 2,
        "intermediate_size": 64,
        "num_hidden_layers": 1,
        "num_quantizers": CODE_GROUPS,
        "decoder_dim": 32,
        "initializer_range": INIT_RANGE,
    }
    return Qwen3OmniMoeConfig(
        thinker_config=thinker,
        talker_config=talker,
        code2wav_config=code2wav,
        enable_audio_output=True,
        im_start_token_id=ids["<|im_start|>"],
        im_end_token_id=ids["<|im_end|>"],
        tts_pad_token_id=ids["<tts_pad>"],
        tts_bos_token_id=ids["<tts_text_bos>"],
        tts_eos_token_id=ids["<tts_text_eod>"],
        system_token_id=int(tok.convert_tokens_to_ids("system")),
        user_token_id=int(tok.convert_tokens_to_ids("user")),
        assistant_token_id=int(tok.convert_tokens_to_ids("assistant")),
    )


def build(out: Path, seed: int = 0) -> Path:
    """Write a random-weight Qwen3-Omni checkpoint (hub layout) to ``out``; return it."""
    import json

    from transformers import Qwen3OmniMoeForConditionalGeneration

    tok = tokenizer()
    model = random_model(Qwen3OmniMoeForConditionalGeneration, _config(tok), seed)
    im_end = int(tok.convert_tokens_to_ids("<|im_end|>"))
    eot = int(tok.convert_tokens_to_ids("<|endoftext|>"))
    save_model(model, out, eos_token_id=[im_end, eot], pad_token_id=eot)
    tok.save_pretrained(out)
    feature_extractor().save_pretrained(out)
    pre = out / "preprocessor_config.json"
    data = json.loads(pre.read_text())
    data["processor_class"] = "Qwen3OmniMoeProcessor"
    pre.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    (out / "chat_template.json").write_text(
        json.dumps({"chat_template": CHAT_TEMPLATE}, indent=2) + "\n"
    )
    return out
