"""The OpenAI-compatible backend (vLLM, SGLang, hosted APIs, ``ambiscope serve-model``).

`backend` holds the class (registered as ``openai``), `transport` the HTTP layer,
`responses` the parsing of response bodies.
"""

from ambiscope.core.alm.backends.openai.backend import (
    DEFAULT_BASE_URL,
    OpenAIBackend,
    encode_wav_base64,
)
from ambiscope.core.alm.backends.openai.responses import (
    _candidate,
    _choices,
    label_scores_from_top_logprobs,
    yes_probability,
)

__all__ = [
    "DEFAULT_BASE_URL",
    "OpenAIBackend",
    "_candidate",
    "_choices",
    "encode_wav_base64",
    "label_scores_from_top_logprobs",
    "yes_probability",
]
