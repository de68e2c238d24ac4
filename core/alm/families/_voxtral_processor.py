"""Voxtral's processor with a text view of its prompts, so a clip's audio is processed once.

``VoxtralProcessor`` builds prompts only through mistral-common, and ignores
``apply_chat_template(tokenize=False)``: it always extracts the mel features and returns
tensors. Its ``MistralCommonBackend`` encodes every string as plain text, so ``"[/INST]"`` or
``"</s>"`` never become their special ids. Together that leaves the backend no text to
extend a clip's encoded audio prefix with: every prompt of a clip (sample, labels, each
verifier question) would run the feature extractor again.

The two subclasses here add exactly those missing views and change nothing else:

* :class:`TextViewVoxtralProcessor` answers ``tokenize=False`` with the prompt mistral-common
  builds, decoded with its control tokens (``<s>[INST][BEGIN_AUDIO][AUDIO]...[/INST]``),
  without computing features; ``tokenize=True`` is Voxtral's own path.
* :class:`SpecialAwareMistralBackend` encodes control-token strings inside text to their ids
  (as Hugging Face tokenizers do for added special tokens), so that prompt text re-encodes
  to the ids mistral-common produced: the text between control tokens is one mistral-common
  text chunk, encoded alone either way. Prompts themselves are still built by
  mistral-common, whose user text stays plain bytes.

Not auto-imported (leading underscore): it imports transformers at module level.
"""

from __future__ import annotations

import re
from functools import cached_property
from typing import Any

from transformers import VoxtralProcessor
from transformers.tokenization_mistral_common import MistralCommonBackend


class SpecialAwareMistralBackend(MistralCommonBackend):
    """``MistralCommonBackend`` whose text encoding maps control-token strings to their ids."""

    @cached_property
    def _special_split(self) -> re.Pattern[str]:
        names = sorted(self.all_special_tokens, key=len, reverse=True)
        return re.compile("(" + "|".join(re.escape(n) for n in names) + ")")

    def _text_to_ids(self, text: str, add_special_tokens: bool) -> list[int]:
        tekken = self.tokenizer.instruct_tokenizer.tokenizer
        ids: list[int] = [tekken.bos_id] if add_special_tokens else []
        for i, part in enumerate(self._special_split.split(text)):
            if i % 2:  # the split keeps the separators (control tokens) at odd positions
                ids.append(tekken.get_special_token(part))
            elif part:
                ids += tekken.encode(part, bos=False, eos=False)
        return ids


class TextViewVoxtralProcessor(VoxtralProcessor):
    """``VoxtralProcessor`` whose ``apply_chat_template(tokenize=False)`` returns text."""

    def apply_chat_template(
        self, conversation: Any, *args: Any, tokenize: bool = False, **kwargs: Any
    ) -> Any:
        if tokenize:
            return super().apply_chat_template(conversation, *args, tokenize=True, **kwargs)
        ids = self.tokenizer.apply_chat_template(
            conversation,
            tools=kwargs.get("tools"),
            add_generation_prompt=kwargs.get("add_generation_prompt", False),
            continue_final_message=kwargs.get("continue_final_message", False),
            tokenize=True,
            return_dict=False,
        )
        return self.tokenizer.decode(ids, skip_special_tokens=False)
