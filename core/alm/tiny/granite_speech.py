"""A tiny random-weight Granite Speech checkpoint, built offline in about a second.

It loads through the code paths the real ``ibm-granite/granite-speech-3.3-2b`` takes: the
family's processor assembly (``GraniteSpeechProcessor`` over the checkpoint's tokenizer,
feature extractor config and chat template) and ``AutoModelForMultimodalLM``
(``GraniteSpeechForConditionalGeneration``).

Realistic: the audio frontend (16 kHz, 80-bin log-mel with 512-point FFT, 10 ms hop,
stacked frame pairs, a conformer with 200-frame attention blocks, a Q-former projecting
every 15 encoder frames to 3 LM tokens), the Granite 3.3 chat template and its role
tokens, and a byte-level BPE of the real tokenizer's class (``GPT2Tokenizer``). Tiny: widths
64, 2 conformer + 1 Q-former + 2 LM layers, ~1k-token vocabulary, no LoRA adapter.
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

# granite-speech-3.3's chat template (Granite 3.3 instruct's): a string-content template,
# so the audio is the literal <|audio|> tag inside the user message.
CHAT_TEMPLATE = """{# Alias tools -> available_tools #}
{%- if tools and not available_tools -%}
    {%- set available_tools = tools -%}
{%- endif -%}
{%- if messages[0]['role'] == 'system' %}
     {%- set system_message = messages[0]['content'] %}
     {%- set loop_messages = messages[1:] %}
 {%- else %}
     {%- set system_message = "Knowledge Cutoff Date: April 2024.\\nToday's Date: " + strftime_now('%B %d, %Y') + ".\\nYou are Granite, developed by IBM." %}
     {%- if available_tools and documents %}
         {%- set system_message = system_message + " You are a helpful assistant with access to the following tools. When a tool is required to answer the user's query, respond only with <|tool_call|> followed by a JSON list of tools used. If a tool does not exist in the provided list of tools, notify the user that you do not have the ability to fulfill the request.\\nWrite the response to the user's input by strictly aligning with the facts in the provided documents. If the information needed to answer the question is not available in the documents, inform the user that the question cannot be answered based on the available data." %}
     {%- elif available_tools %}
         {%- set system_message = system_message + " You are a helpful assistant with access to the following tools. When a tool is required to answer the user's query, respond only with <|tool_call|> followed by a JSON list of tools used. If a tool does not exist in the provided list of tools, notify the user that you do not have the ability to fulfill the request." %}
     {%- elif documents %}
         {%- set system_message = system_message + " Write the response to the user's input by strictly aligning with the facts in the provided documents. If the information needed to answer the question is not available in the documents, inform the user that the question cannot be answered based on the available data." %}
    {%- elif thinking %}
    {%- set system_message = system_message + " You are a helpful AI assistant.\\nRespond to every user query in a comprehensive and detailed way. You can write down your thoughts and reasoning process before responding. In the thought process, engage in a comprehensive cycle of analysis, summarization, exploration, reassessment, reflection, backtracing, and iteration to develop well-considered thinking process. In the response section, based on various attempts, explorations, and reflections from the thoughts section, systematically present the final solution that you deem correct. The response should summarize the thought process. Write your thoughts between <think></think> and write your response between <response></response> for each user query." %}
     {%- else %}
         {%- set system_message = system_message + " You are a helpful AI assistant." %}
     {%- endif %}
     {%- if 'citations' in controls and documents %}
         {%- set system_message = system_message + '\\nUse the symbols <|start_of_cite|> and <|end_of_cite|> to indicate when a fact comes from a document in the search result, e.g <|start_of_cite|> {document_id: 1}my fact <|end_of_cite|> for a fact from document 1. Afterwards, list all the citations with their corresponding documents in an ordered list.' %}
     {%- endif %}
     {%- if 'hallucinations' in controls and documents %}
         {%- set system_message = system_message + '\\nFinally, after the response is written, include a numbered list of sentences from the response with a corresponding risk value that are hallucinated and not based in the documents.' %}
     {%- endif %}
     {%- set loop_messages = messages %}
 {%- endif %}
 {{- '<|start_of_role|>system<|end_of_role|>' + system_message + '<|end_of_text|>\\n' }}
 {%- if available_tools %}
     {{- '<|start_of_role|>available_tools<|end_of_role|>' }}
     {{- available_tools | tojson(indent=4) }}
     {{- '<|end_of_text|>\\n' }}
 {%- endif %}
 {%- if documents %}
     {%- for document in documents %}
         {{- '<|start_of_role|>document {"document_id": "' + document['doc_id'] | string + '"}<|end_of_role|>\\n' }}
         {{- document['text'] }}
         {{- '<|end_of_text|>\\n' }}
              {%- endfor %}
 {%- endif %}
 {%- for message in loop_messages %}
     {{- '<|start_of_role|>' + message['role'] + '<|end_of_role|>' + message['content'] + '<|end_of_text|>\\n' }}
     {%- if loop.last and add_generation_prompt %}
         {{- '<|start_of_role|>assistant' }}
             {%- if controls %}
                 {{- ' ' + controls | tojson()}}
             {%- endif %}
         {{- '<|end_of_role|>' }}
     {%- endif %}
 {%- endfor %}"""  # noqa: E501

END_OF_TEXT = "<|end_of_text|>"
AUDIO = "<|audio|>"
# As in the real vocabulary: <|end_of_text|> is id 0 (bos = eos = pad = unk), then the
# role / tool-call tokens and the audio placeholder Granite Speech adds.
SPECIAL_TOKENS = (END_OF_TEXT, "<|start_of_role|>", "<|end_of_role|>", "<|tool_call|>", AUDIO)


def _hf_tokenizer():
    """The trained BPE as ``GPT2Tokenizer`` (the real checkpoint's tokenizer class)."""
    from transformers import GPT2Tokenizer

    vocab, merges = vocab_and_merges(train_bpe(SPECIAL_TOKENS))
    tokenizer = GPT2Tokenizer(
        vocab=vocab,
        merges=merges,
        unk_token=END_OF_TEXT,
        bos_token=END_OF_TEXT,
        eos_token=END_OF_TEXT,
        pad_token=END_OF_TEXT,
        extra_special_tokens=[t for t in SPECIAL_TOKENS if t != END_OF_TEXT],
        model_max_length=131072,
        clean_up_tokenization_spaces=False,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def _model_config(tokenizer):
    from transformers import GraniteSpeechConfig

    eot = tokenizer.convert_tokens_to_ids(END_OF_TEXT)
    text_config = {
        "model_type": "granite",
        "vocab_size": len(tokenizer),
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "attention_multiplier": 0.25,  # 1/sqrt(head_dim), like the real 1/64 for head_dim 64
        "max_position_embeddings": 4096,
        "tie_word_embeddings": True,
        "initializer_range": INIT_RANGE,
        "bos_token_id": eot,
        "eos_token_id": eot,
        "pad_token_id": eot,
    }
    encoder_config = {
        "model_type": "granite_speech_encoder",
        "input_dim": 160,  # two stacked 80-bin mel frames
        "num_layers": 2,
        "hidden_dim": 64,
        "num_heads": 4,
        "dim_head": 16,
        "output_dim": 42,
        "context_size": 200,
        "max_pos_emb": 512,
        "conv_kernel_size": 15,
        "initializer_range": INIT_RANGE,
    }
    projector_config = {
        "model_type": "blip_2_qformer",
        "vocab_size": 32,
        "hidden_size": 64,
        "encoder_hidden_size": 64,
        "num_hidden_layers": 1,
        "num_attention_heads": 4,
        "intermediate_size": 128,
        "cross_attention_frequency": 1,
        "initializer_range": INIT_RANGE,
    }
    return GraniteSpeechConfig(
        text_config=text_config,
        encoder_config=encoder_config,
        projector_config=projector_config,
        audio_token_index=tokenizer.convert_tokens_to_ids(AUDIO),
        has_lora_adapter=False,
        downsample_rate=5,
        window_size=15,
        initializer_range=INIT_RANGE,
        tie_word_embeddings=True,
    )


def build(out: Path, seed: int = 0) -> Path:
    """Write a random-weight Granite Speech checkpoint + processor to ``out``; return it.

    The processor files are the hub layout (``GraniteSpeechFeatureExtractor`` config,
    ``GPT2Tokenizer``, chat template), written through the torchaudio-free extractor so
    the build works without torchaudio. Deterministic for a seed.
    """
    from transformers import (
        GraniteSpeechForConditionalGeneration,
        GraniteSpeechProcessor,
    )

    from ambiscope.core.alm.families._granite_speech_features import (
        TorchGraniteSpeechFeatureExtractor,
    )

    tokenizer = _hf_tokenizer()
    model = random_model(GraniteSpeechForConditionalGeneration, _model_config(tokenizer), seed)
    eot = tokenizer.convert_tokens_to_ids(END_OF_TEXT)
    save_model(model, out, bos_token_id=eot, eos_token_id=eot, pad_token_id=eot)
    processor = GraniteSpeechProcessor(
        audio_processor=TorchGraniteSpeechFeatureExtractor(),
        tokenizer=tokenizer,
        audio_token=AUDIO,
        chat_template=CHAT_TEMPLATE,
    )
    processor.save_pretrained(out)
    return out
