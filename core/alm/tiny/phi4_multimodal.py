"""A tiny random-weight Phi-4-multimodal checkpoint (HF-native format), built in ~a second.

It loads through the code paths the converted ``microsoft/Phi-4-multimodal-instruct``
takes: the family's audio+text processor (``Phi4MultimodalFeatureExtractor`` + tokenizer
+ chat template, no image processor) and ``AutoModelForMultimodalLM``
(``Phi4MultimodalForCausalLM``, whose SigLIP vision tower is native and tiny here).

Realistic: the audio frontend (16 kHz, 80-bin log-mel with pre-emphasis, 10 ms hop, the
conformer's 8x time reduction: one LM token per 80 ms), partial rotary embeddings with
LongRoPE factors, the Phi-4 chat template and role tokens, the image/audio placeholder
tokens ``<|endoftext10|>`` / ``<|endoftext11|>`` and a byte-level BPE of the real
tokenizer's class (``GPT2Tokenizer``). Tiny: widths 64 (vision 32), 2 conformer + 2 LM
layers and 1 vision layer, ~1k-token vocabulary, no LoRA adapters.
"""

from __future__ import annotations

from pathlib import Path

from ambiscope.core.alm.tiny.common import (
    INIT_RANGE,
    random_model,
    save_model,
    train_bpe,
    vocab_and_merges,
)

# The chat template of Phi-4-multimodal-instruct's tokenizer_config.json, which the HF
# conversion script also makes the processor's template: string contents only.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' and 'tools' in message and message['tools'] is not none %}"
    "{{ '<|' + message['role'] + '|>' + message['content'] + '<|tool|>' + message['tools'] "
    "+ '<|/tool|>' + '<|end|>' }}"
    "{% else %}"
    "{{ '<|' + message['role'] + '|>' + message['content'] + '<|end|>' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% else %}{{ eos_token }}{% endif %}"
)

END_OF_TEXT = "<|endoftext|>"
IMAGE = "<|endoftext10|>"
AUDIO = "<|endoftext11|>"
END = "<|end|>"
ROLE_TOKENS = ("<|system|>", "<|user|>", "<|assistant|>", END, "<|tool|>", "<|/tool|>")


def _hf_tokenizer():
    """The trained BPE as ``GPT2Tokenizer`` with Phi-4's named image/audio tokens."""
    from transformers import GPT2Tokenizer

    vocab, merges = vocab_and_merges(train_bpe((END_OF_TEXT, IMAGE, AUDIO, *ROLE_TOKENS)))
    tokenizer = GPT2Tokenizer(
        vocab=vocab,
        merges=merges,
        unk_token=END_OF_TEXT,
        bos_token=END_OF_TEXT,
        eos_token=END_OF_TEXT,
        pad_token=END_OF_TEXT,
        extra_special_tokens={"image_token": IMAGE, "audio_token": AUDIO},
        model_max_length=131072,
        clean_up_tokenization_spaces=False,
    )
    # Role tokens are special added tokens (never split), as in the real tokenizer.
    tokenizer.add_tokens(list(ROLE_TOKENS), special_tokens=True)
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def _model_config(tokenizer):
    from transformers import Phi4MultimodalConfig

    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in (END_OF_TEXT, IMAGE, AUDIO, END)}
    hidden, heads, partial = 64, 4, 0.75
    rotary_pairs = int(hidden // heads * partial) // 2
    audio_config = {
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_blocks": 2,
        "num_attention_heads": 4,
        "ext_pw_out_channel": 64,
        "depthwise_separable_out_channel": 64,
        "nemo_conv_channels": 64,
        "input_size": 80,
        "time_reduction": 8,
        "bias_max_distance": 500,
        "audio_token_id": ids[AUDIO],
        "initializer_range": INIT_RANGE,
    }
    vision_config = {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "image_token_id": ids[IMAGE],
        "initializer_range": INIT_RANGE,
    }
    return Phi4MultimodalConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=heads,
        num_key_value_heads=2,
        max_position_embeddings=131072,
        original_max_position_embeddings=4096,
        rope_parameters={
            "rope_type": "longrope",
            "rope_theta": 10000.0,
            "partial_rotary_factor": partial,
            "short_factor": [1.0] * rotary_pairs,
            "long_factor": [1.0 + 0.5 * i for i in range(rotary_pairs)],
        },
        tie_word_embeddings=True,
        initializer_range=INIT_RANGE,
        bos_token_id=ids[END_OF_TEXT],
        eos_token_id=[ids[END_OF_TEXT], ids[END]],
        pad_token_id=ids[END_OF_TEXT],
        audio_config=audio_config,
        vision_config=vision_config,
    )


def build(out: Path, seed: int = 0) -> Path:
    """Write a random-weight Phi-4-multimodal checkpoint + audio processor to ``out``.

    Deterministic for a seed. The processor files carry the real class names
    (``Phi4MultimodalProcessor``, ``Phi4MultimodalFeatureExtractor``) without an image
    processor config, so load it with the family's processor assembly.
    """
    from transformers import (
        Phi4MultimodalFeatureExtractor,
        Phi4MultimodalForCausalLM,
    )

    from ambiscope.core.alm.families._phi4_multimodal_processor import (
        Phi4MultimodalAudioProcessor,
    )

    tokenizer = _hf_tokenizer()
    model = random_model(Phi4MultimodalForCausalLM, _model_config(tokenizer), seed)
    eot = tokenizer.convert_tokens_to_ids(END_OF_TEXT)
    end = tokenizer.convert_tokens_to_ids(END)
    # Like the hub's generation_config.json: stop on <|endoftext|> and <|end|>.
    save_model(model, out, bos_token_id=eot, eos_token_id=[eot, end], pad_token_id=eot)
    processor = Phi4MultimodalAudioProcessor(
        audio_processor=Phi4MultimodalFeatureExtractor(),
        tokenizer=tokenizer,
        chat_template=CHAT_TEMPLATE,
    )
    processor.save_pretrained(out)
    return out
