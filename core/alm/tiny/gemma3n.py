"""A tiny random-weight Gemma 3n checkpoint, where timm can be imported.

``Gemma3nModel`` always builds its vision tower as ``TimmWrapperModel`` (timm's
MobileNet-V5), at construction and at ``from_pretrained`` alike, and transformers only
lets that run when timm *and* torchvision import (``is_timm_available`` checks both).
Where they do not, :func:`build` raises :class:`TinyUnavailable` with that reason; the
checkpoint could not be loaded there anyway. The tiny vision tower is timm's smallest
MobileNet-V3 (images are never fed in the tests; the audio path is what matters).

Realistic: the USM-style audio frontend (16 kHz, 128-bin log-mel, 32 ms frames, 10 ms
hop, conformer with 4x reduction, every clip padded to 188 soft tokens), the Gemma 3n LM
peculiarities that encode-once must survive (per-layer inputs, AltUp, LAuReL, activation
sparsity, sliding + full attention, KV sharing across the last layers, logit softcapping),
the chat template and the ``<start_of_audio>`` / ``<audio_soft_token>`` layout with
multimodal token ids above the text vocabulary, and a ``GemmaTokenizer`` (byte-fallback
BPE over ``▁``-normalised text). Tiny: widths 64, 4 LM + 2 conformer layers, ~1k tokens.
"""

from __future__ import annotations

from pathlib import Path

from ambiscope.core.alm.tiny import TinyUnavailable
from ambiscope.core.alm.tiny.common import (
    INIT_RANGE,
    WORDS,
    random_model,
    save_model,
    vocab_and_merges,
)

# google/gemma-3n-E2B-it's chat template (tokenizer_config.json / chat_template.jinja).
CHAT_TEMPLATE = """{{ bos_token }}
{%- if messages[0]['role'] == 'system' -%}
    {%- if messages[0]['content'] is string -%}
        {%- set first_user_prefix = messages[0]['content'] + '\\n\\n' -%}
    {%- else -%}
        {%- set first_user_prefix = messages[0]['content'][0]['text'] + '\\n\\n' -%}
    {%- endif -%}
    {%- set loop_messages = messages[1:] -%}
{%- else -%}
    {%- set first_user_prefix = "" -%}
    {%- set loop_messages = messages -%}
{%- endif -%}
{%- for message in loop_messages -%}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}
        {{ raise_exception("Conversation roles must alternate user/assistant/user/assistant/...") }}
    {%- endif -%}
    {%- if (message['role'] == 'assistant') -%}
        {%- set role = "model" -%}
    {%- else -%}
        {%- set role = message['role'] -%}
    {%- endif -%}
    {{ '<start_of_turn>' + role + '\\n' + (first_user_prefix if loop.first else "") }}
    {%- if message['content'] is string -%}
        {{ message['content'] | trim }}
    {%- elif message['content'] is iterable -%}
        {%- for item in message['content'] -%}
            {%- if item['type'] == 'audio' -%}
                {{ '<audio_soft_token>' }}
            {%- elif item['type'] == 'image' -%}
                {{ '<image_soft_token>' }}
            {%- elif item['type'] == 'text' -%}
                {{ item['text'] | trim }}
            {%- endif -%}
        {%- endfor -%}
    {%- else -%}
        {{ raise_exception("Invalid content type") }}
    {%- endif -%}
    {{ '<end_of_turn>\\n' }}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{'<start_of_turn>model\\n'}}
{%- endif -%}
"""

# Text specials first (as in the real vocabulary: <pad> 0, <eos> 1, <bos> 2, <unk> 3, ...),
# then the 256 byte-fallback pieces.
TEXT_SPECIALS = (
    "<pad>",
    "<eos>",
    "<bos>",
    "<unk>",
    "<mask>",
    "<start_of_turn>",
    "<end_of_turn>",
    "<start_of_image>",
    "<start_of_audio>",
)
BYTE_PIECES = tuple(f"<0x{b:02X}>" for b in range(256))
# Multimodal ids live above the text vocabulary, each modality in its own block (the real
# model: vision 262144..262271, audio 262272..262399), embedded by their own embedders.
MM_VOCAB = 8
VISION_TOKENS = (
    "<end_of_image>",
    "<image_soft_token>",
    *(f"<vision_reserved_{i}>" for i in range(MM_VOCAB - 2)),
)
AUDIO_TOKENS = (
    "<end_of_audio>",
    "<audio_soft_token>",
    *(f"<audio_reserved_{i}>" for i in range(MM_VOCAB - 2)),
)
NAMED = {
    "image_token": "<image_soft_token>",
    "boi_token": "<start_of_image>",
    "eoi_token": "<end_of_image>",
    "audio_token": "<audio_soft_token>",
    "boa_token": "<start_of_audio>",
    "eoa_token": "<end_of_audio>",
}
AUDIO_SOFT_TOKENS = 188
IMAGE_SOFT_TOKENS = 256


def _corpus() -> list[str]:
    """Training lines: every prompt/label word alone, after a space and in answers."""
    words = WORDS.split()
    lines = [" ".join(words), "Final answer: neutral", "Answer: Yes", "Answer: No"]
    for word in words:
        lines += [word, f" {word}", f'{{"{word}": 0.5, "other": 0.5}}', f"Final answer: {word}"]
    return lines * 3


def _hf_tokenizer():
    """A ``GemmaTokenizer`` over a BPE trained in Gemma's style, plus the multimodal blocks."""
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, trainers
    from tokenizers.models import BPE
    from transformers import GemmaTokenizer

    raw = Tokenizer(BPE(unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    raw.normalizer = normalizers.Replace(" ", "\u2581")
    raw.pre_tokenizer = pre_tokenizers.Split(" ", behavior="merged_with_previous")
    trainer = trainers.BpeTrainer(
        vocab_size=1024,
        min_frequency=1,
        special_tokens=[*TEXT_SPECIALS, *BYTE_PIECES],
        show_progress=False,
    )
    raw.train_from_iterator(_corpus(), trainer=trainer)
    vocab, merges = vocab_and_merges(raw)
    for token in (*VISION_TOKENS, *AUDIO_TOKENS):
        vocab[token] = len(vocab)
    tokenizer = GemmaTokenizer(
        vocab=vocab,
        merges=merges,
        extra_special_tokens=NAMED,
        model_max_length=32768,
        clean_up_tokenization_spaces=False,
    )
    tokenizer.add_tokens(
        ["<start_of_turn>", "<end_of_turn>", *VISION_TOKENS, *AUDIO_TOKENS], special_tokens=True
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def _model_config(tokenizer):
    from transformers import Gemma3nConfig

    text_vocab = tokenizer.convert_tokens_to_ids(VISION_TOKENS[0])
    total = text_vocab + 2 * MM_VOCAB
    ids = {name: tokenizer.convert_tokens_to_ids(tok) for name, tok in NAMED.items()}
    text_config = {
        "vocab_size": total,
        "vocab_size_per_layer_input": text_vocab,
        "hidden_size": 64,
        "hidden_size_per_layer_input": 16,
        "intermediate_size": 128,
        "num_hidden_layers": 4,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 16,
        "layer_types": ["sliding_attention", "full_attention"] * 2,
        "sliding_window": 512,
        "num_kv_shared_layers": 2,
        "laurel_rank": 8,
        "activation_sparsity_pattern": [0.95, 0.0, 0.0, 0.0],
        "max_position_embeddings": 32768,
        "initializer_range": INIT_RANGE,
        "pad_token_id": tokenizer.convert_tokens_to_ids("<pad>"),
        "eos_token_id": tokenizer.convert_tokens_to_ids("<eos>"),
        "bos_token_id": tokenizer.convert_tokens_to_ids("<bos>"),
    }
    audio_config = {
        "vocab_size": MM_VOCAB,
        "vocab_offset": text_vocab + MM_VOCAB,
        "input_feat_size": 128,
        "hidden_size": 64,
        "conf_num_attention_heads": 4,
        "conf_num_hidden_layers": 2,
        "sscp_conv_channel_size": [16, 8],
        "initializer_range": INIT_RANGE,
    }
    vision_config = {
        "architecture": "mobilenetv3_small_050",
        "hidden_size": 64,
        "vocab_size": MM_VOCAB,
        "vocab_offset": text_vocab,
        "initializer_range": INIT_RANGE,
    }
    return Gemma3nConfig(
        text_config=text_config,
        audio_config=audio_config,
        vision_config=vision_config,
        audio_soft_tokens_per_image=AUDIO_SOFT_TOKENS,
        vision_soft_tokens_per_image=IMAGE_SOFT_TOKENS,
        boi_token_id=ids["boi_token"],
        eoi_token_id=ids["eoi_token"],
        image_token_id=ids["image_token"],
        boa_token_id=ids["boa_token"],
        eoa_token_id=ids["eoa_token"],
        audio_token_id=ids["audio_token"],
        initializer_range=INIT_RANGE,
    )


def build(out: Path, seed: int = 0) -> Path:
    """Write a random-weight Gemma 3n checkpoint + processor to ``out``; return it.

    Raises :class:`TinyUnavailable` where transformers cannot build the timm vision tower
    (every Gemma 3n checkpoint has one, so none loads there).
    """
    from transformers.utils import is_timm_available

    if not is_timm_available():
        raise TinyUnavailable(
            "Gemma3nModel always constructs its vision tower as TimmWrapperModel (timm "
            "MobileNet-V5), and transformers allows that only when both timm and "
            "torchvision import (is_timm_available); they do not here"
        )
    return write_checkpoint(out, seed)


def write_checkpoint(out: Path, seed: int = 0) -> Path:
    """The build itself, without the timm check (tests substitute the vision tower)."""
    from transformers import (
        Gemma3nAudioFeatureExtractor,
        Gemma3nForConditionalGeneration,
        Gemma3nProcessor,
        SiglipImageProcessorPil,
    )

    tokenizer = _hf_tokenizer()
    model = random_model(Gemma3nForConditionalGeneration, _model_config(tokenizer), seed)
    ids = [tokenizer.convert_tokens_to_ids(t) for t in ("<bos>", "<eos>", "<end_of_turn>", "<pad>")]
    bos, eos, eot, pad = ids
    # Like gemma-3n-E2B-it's generation_config.json minus its sampling defaults.
    save_model(model, out, bos_token_id=bos, eos_token_id=[eos, eot], pad_token_id=pad)
    image_processor = SiglipImageProcessorPil(
        size={"height": 768, "width": 768},
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
    )
    processor = Gemma3nProcessor(
        feature_extractor=Gemma3nAudioFeatureExtractor(),
        image_processor=image_processor,
        tokenizer=tokenizer,
        chat_template=CHAT_TEMPLATE,
        audio_seq_length=AUDIO_SOFT_TOKENS,
        image_seq_length=IMAGE_SOFT_TOKENS,
    )
    processor.save_pretrained(out)
    return out
