"""Local ALM backend on Hugging Face transformers (DESIGN.md "ALM candidates and strategies").

The expensive part of asking an audio-language model the same question N times is the
prompt: the audio encoder (Qwen2-Audio always encodes a 30 s window) and the prefill over
the expanded audio placeholders. Plain ``generate(num_return_sequences=N)`` repeats both for
every row. This backend **encodes once, decodes N**:

1. build the inputs with the processor (chat template + audio features);
2. one forward pass over the prompt *minus its last token*, with the audio features, fills a
   KV cache of one row;
3. the cache is expanded to N rows (views of the one row, `caches.expanded`);
4. ``model.generate(input_ids=<full prompt repeated N times>, cache=<expanded cache>)``
   decodes the N continuations in one batch. ``generate`` sees a cache holding all but one
   prompt token, so its own prefill forwards only the last prompt token, and the audio
   features are not passed at all: nothing can re-encode the audio. Because the decoding
   loop and the logits processors (`RowSampler` included) are the ones plain
   ``generate(num_return_sequences=N)`` runs with, a seeded run draws exactly its tokens
   (tests check this).

Label scoring and verifier scores reuse the same trick: one prefill of the shared prefix
(system + audio + instruction), then all label continuations / verifier suffixes in one
batch on an expanded copy of the cache.

Log-probabilities are always under the model's *untempered* distribution, i.e.
``log_softmax`` of the raw logits, whatever temperature/top-p the sampling used, so BoN and
weighted-BoN scores mean the same thing across temperatures. They are recorded by a logits
processor that runs before generate's temperature/top-p warpers and keeps one step of
logits (O(N·V) memory instead of ``output_logits``' O(N·V·T)).

Sampled candidate i of a clip draws from its own generator seeded ``derive_seed(clip seed,
i)`` (`RowSampler`), so it does not depend on N, on chunking, on the clips batched with it
or on the global RNG, whose state is never touched.

Not thread-safe: one backend instance serves one thread (the worker runs clips
sequentially).
"""

from __future__ import annotations

import base64
import contextlib
import copy
import dataclasses
import hashlib
import importlib
import inspect
import io
import logging
import os
import re
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
import transformers
from transformers import AutoConfig, AutoProcessor, GenerationConfig, LogitsProcessor

from ambiscope.core.alm.backends.transformers import caches
from ambiscope.core.alm.base import (
    AudioInput,
    BackendError,
    Candidate,
    ChatPrompt,
    GenerationParams,
    ModelLoadError,
    derive_seed,
)
from ambiscope.core.alm.families import Family, build_messages, family_for
from ambiscope.core.audio import resample
from ambiscope.core.text import one_line

__all__ = ["TransformersBackend"]

log = logging.getLogger(__name__)

T = TypeVar("T")

_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
}
# Verifier answers: every single-token spelling counts (their probabilities are summed), so
# P(yes) does not depend on whether the template leaves a space before the answer.
_YES = ("Yes", " Yes", "yes", " yes", "YES", " YES")
_NO = ("No", " No", "no", " no", "NO", " NO")
_TOKEN_KEYS = frozenset(
    {"input_ids", "attention_mask", "token_type_ids", "mm_token_type_ids", "moe_mm_token_type_ids"}
)
_LOGIT_BUDGET = 64 * 1024 * 1024  # fp32 logit elements per teacher-forced forward
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def _offline() -> bool:
    """HF offline mode from the environment (read now, not at huggingface_hub import)."""
    flags = (os.environ.get("HF_HUB_OFFLINE", ""), os.environ.get("TRANSFORMERS_OFFLINE", ""))
    if any(f.strip().lower() in {"1", "true", "yes", "on"} for f in flags):
        return True
    with contextlib.suppress(Exception):
        import huggingface_hub.constants as hub_constants

        return bool(hub_constants.HF_HUB_OFFLINE)
    return False


@contextlib.contextmanager
def _quiet_progress() -> Iterator[None]:
    """Hide transformers' per-file progress bars (they would garble the TUI/worker logs)."""
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


def _resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ModelLoadError(f"invalid device {device!r}: {one_line(exc)}") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError(f"device {device!r} requested but CUDA is not available")
    return dev


def _resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """auto: bf16 on CUDA (fp16 on GPUs without bf16), fp32 on CPU (bf16 matmuls are slow there)."""
    if dtype == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    try:
        return _DTYPES[dtype.lower()]
    except KeyError:
        raise ModelLoadError(
            f"unknown dtype {dtype!r}; use auto, float32, bfloat16 or float16"
        ) from None


def _local_fingerprint(path: Path) -> str:
    """Content hash of a local checkpoint: full bytes of small files, (name, size) of weights.

    Hashing multi-GB weight files would take minutes; their names and sizes plus the exact
    config/tokenizer files identify a checkpoint well enough for provenance.
    """
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        rel = f.relative_to(path).as_posix()
        size = f.stat().st_size
        h.update(f"{rel}\0{size}\0".encode())
        if size <= 4 * 1024 * 1024:
            h.update(f.read_bytes())
    return "local-" + h.hexdigest()[:16]


def _wav_base64(samples: np.ndarray, sample_rate: int) -> str:
    """Base64 WAV for processors that only accept url/path/base64 audio (Voxtral)."""
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, samples, sample_rate, format="WAV", subtype="FLOAT")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _chunks(n: int, size: int) -> list[int]:
    return [size] * (n // size) + ([n % size] if n % size else [])


def _free_memory(device: torch.device) -> int:
    """Free bytes on the device (CUDA), else available RAM (Linux), else 4 GiB."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    with contextlib.suppress(OSError, ValueError, StopIteration):
        with open("/proc/meminfo") as meminfo:
            line = next(x for x in meminfo if x.startswith("MemAvailable:"))
        return int(line.split()[1]) * 1024
    return 4 << 30


def _with_text(aligned: dict[str, torch.Tensor], tokens: list[int]) -> dict[str, torch.Tensor]:
    """Token-aligned inputs with text tokens appended: attended (mask 1), type id 0."""
    ids = aligned["input_ids"]
    tail = torch.tensor([tokens], dtype=ids.dtype, device=ids.device)
    out = {}
    for key, value in aligned.items():
        if key == "input_ids":
            fill = tail
        elif key == "attention_mask":
            fill = torch.ones_like(tail, dtype=value.dtype)
        else:
            fill = torch.zeros_like(tail, dtype=value.dtype)
        out[key] = torch.cat([value, fill], dim=1)
    return out


def _audio_key(samples: np.ndarray) -> bytes:
    """Identity of a clip's audio (the prefix cache is reused only for the same samples)."""
    return hashlib.blake2b(samples.tobytes(), digest_size=16).digest() + samples.size.to_bytes(8)


@dataclass
class _Head:
    """A clip's audio prefix, prefilled once: prompt tokens up to the last audio token.

    A clip has one per distinct text before its audio (a different system prompt).

    ``cache`` covers ``ids`` (one row, the audio encoded into it) and is never mutated
    (continuations run on `caches.expanded` copies); ``text`` is the rendered prompt
    text up to the same point, so a later prompt of the same clip that starts with it
    only needs its text tail tokenized (no feature extraction, no audio encoder).
    """

    key: bytes
    ids: torch.Tensor
    aligned: dict[str, torch.Tensor]
    text: str | None
    cache: Any
    logits: torch.Tensor
    # position state the model keeps between calls (multimodal RoPE deltas), as the
    # prefill left it: restored before continuing, whatever ran on the model since
    positions: tuple[tuple[Any, Any], ...] = ()

    @property
    def length(self) -> int:
        return int(self.ids.shape[1])


@dataclass
class _Prompt:
    """One (clip, prompt) ready to run: processor-style inputs plus the clip's audio key.

    ``inputs`` holds the audio features only when the processor built them; prompts
    assembled from the clip's head (`_Head`) carry token-aligned tensors alone, which
    is all the encode-once paths feed the model.
    """

    inputs: dict[str, Any]
    key: bytes
    text: str | None = None
    head: _Head | None = None

    @property
    def has_audio(self) -> bool:
        return any(k not in _TOKEN_KEYS for k in self.inputs)

    @property
    def ids(self) -> torch.Tensor:
        return self.inputs["input_ids"]

    @property
    def length(self) -> int:
        return int(self.inputs["input_ids"].shape[1])


class _LogprobRecorder(LogitsProcessor):
    """Records log p(chosen token) under the raw logits, inside ``generate``.

    Custom processors run before generate's temperature/top-p warpers, so ``scores`` here
    are the model's raw logits. The chosen token of step t is only known at step t+1 (it is
    the last id of ``input_ids`` then), so one step of log-softmax is kept; the final step is
    gathered in :meth:`finish`. Memory O(N·V), unlike ``output_logits`` (O(N·V·T)).
    """

    def __init__(self) -> None:
        self.steps: list[torch.Tensor] = []
        self._last: torch.Tensor | None = None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self._last is not None:
            self.steps.append(self._last.gather(1, input_ids[:, -1:]).squeeze(1))
        self._last = torch.log_softmax(scores.float(), dim=-1)
        return scores

    def finish(self, new_tokens: torch.Tensor) -> torch.Tensor:
        """Log-probabilities [n, T] (CPU) of the generated tokens [n, T]."""
        n_steps = new_tokens.shape[1]
        steps = self.steps[:n_steps]
        if len(steps) == n_steps - 1 and self._last is not None:
            last_tokens = new_tokens[:, -1:].to(self._last.device)
            steps.append(self._last.gather(1, last_tokens).squeeze(1))
        if len(steps) != n_steps:
            raise BackendError(
                f"internal error: recorded {len(steps)} log-probs for {n_steps} generated tokens"
            )
        if not steps:
            return torch.zeros(new_tokens.shape, dtype=torch.float32)
        return torch.stack(steps, dim=1).float().cpu()


class RowSampler(LogitsProcessor):
    """Draws each row's next token with that row's own generator, inside ``generate``.

    ``generate`` samples all rows of a batch from the global RNG in one call, so a
    candidate's tokens would depend on which other rows shared its batch (N, chunking,
    clips batched together) and on the RNG's history. Here row ``i`` takes one uniform
    draw per step from its own generator seeded with ``seeds[i]`` (``derive_seed(clip seed,
    index)``) and inverts the CDF of the distribution after the same temperature and top-p
    as generate's warpers (all rows at once); the chosen token is made the only finite
    score, so ``generate`` runs greedy (``do_sample=False``) and keeps it.
    Its log-probability is recorded before (`_LogprobRecorder`, raw logits). ``banned``
    tokens (the audio placeholder) are never drawn: in an answer they mean nothing, and a
    model fed its own placeholder back would look for audio features to put there.
    """

    def __init__(
        self,
        seeds: list[int],
        temperature: float,
        top_p: float | None,
        banned: tuple[int, ...] = (),
    ) -> None:
        self.temperature = float(temperature)
        self.top_p = 1.0 if top_p is None else float(top_p)
        self.banned = list(banned)
        self._generators = [np.random.default_rng(seed) for seed in seeds]

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        logits = scores.float() / self.temperature
        if self.banned:
            logits[:, self.banned] = -float("inf")
        if self.top_p < 1.0:  # nucleus: drop the tail whose mass is <= 1 - top_p (keep one)
            ordered, index = torch.sort(logits, descending=False)
            tail = ordered.softmax(dim=-1).cumsum(dim=-1) <= 1 - self.top_p
            tail[:, -1] = False
            logits = logits.masked_fill(tail.scatter(1, index, tail), -float("inf"))
        cdf = logits.softmax(dim=-1).double().cumsum(dim=-1)
        draws = [generator.random() for generator in self._generators]
        u = torch.tensor(draws, dtype=torch.float64, device=cdf.device)[:, None] * cdf[:, -1:]
        chosen = torch.searchsorted(cdf, u, right=True).clamp_(max=cdf.shape[1] - 1)
        out = torch.full_like(scores, -float("inf"))
        return out.scatter(1, chosen, 0.0)


def repeat_rows(inputs: dict[str, Any], rows: int) -> dict[str, Any]:
    """Processor inputs of one prompt repeated for ``rows`` rows (what
    ``num_return_sequences`` does, which greedy ``generate`` refuses)."""
    return {
        k: v.repeat_interleave(rows, 0)
        if isinstance(v, torch.Tensor) and v.shape[:1] == (1,)
        else v
        for k, v in inputs.items()
    }


def _row_seeds(seed: int, first: int, rows: int) -> list[int]:
    return [derive_seed(seed, index) for index in range(first, first + rows)]


class TransformersBackend:
    """Backend protocol implementation over ``AutoProcessor`` + ``AutoModelForMultimodalLM``.

    Args:
        model_id: local checkpoint directory or Hugging Face Hub id.
        device: ``auto`` (CUDA if available, else CPU), ``cpu``, ``cuda``, ``cuda:1``, ...
        dtype: ``auto`` (bf16 on CUDA, fp32 on CPU), ``float32``, ``bfloat16``, ``float16``.
        trust_remote_code: allow the checkpoint's own Python code to run (off by default).
        revision: Hub branch/tag/commit.
        batch_size: most rows decoded at once (``None`` = all N). Halved automatically, and
            kept halved for later calls, when CUDA runs out of memory.
        batch_clips: clips whose candidates `sample_batch` decodes together (``None`` = as
            many as a quarter of the free device memory holds, at most 16).
    """

    name = "transformers"

    def __init__(
        self,
        model_id: str,
        *,
        device: str = "auto",
        dtype: str = "auto",
        trust_remote_code: bool = False,
        revision: str | None = None,
        batch_size: int | None = None,
        batch_clips: int | None = None,
    ) -> None:
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if batch_clips is not None and batch_clips < 1:
            raise ValueError(f"batch_clips must be >= 1, got {batch_clips}")
        self.batch_clips = batch_clips
        self.model_id = str(model_id)
        self.revision = revision
        self.trust_remote_code = trust_remote_code
        self.batch_size = batch_size
        self.device = _resolve_device(device)
        self.dtype = _resolve_dtype(dtype, self.device)
        self._local_dir = self._local_path(self.model_id)
        config = self._load_config()
        self.model_type: str = getattr(config, "model_type", "") or ""
        self.family: Family = family_for(self.model_type)
        self.processor = self._load_processor()
        self.model = self._load_model()
        self.lm = self.model
        self.tokenizer = getattr(self.processor, "tokenizer", None)
        if self.tokenizer is None:
            raise ModelLoadError(f"{self.model_id}: the processor has no tokenizer")
        self._cache_kw = self._cache_keyword()
        self._keeps_logits = "logits_to_keep" in inspect.signature(self.lm.forward).parameters
        self._vocab = self._vocab_size()
        self._hub_generation_defaults = self.lm.generation_config.to_diff_dict()
        self._eos_ids, self._pad_id, self._eot_ids = self._special_ids()
        # The model's recommended sampling defaults (e.g. Qwen2-Audio-Instruct: top_k=20,
        # top_p=0.5, repetition_penalty=1.1) would silently apply on top of ours; the run's
        # GenerationParams are the whole sampling spec, so keep only the token ids.
        self.lm.generation_config = GenerationConfig(
            eos_token_id=self._eos_ids, pad_token_id=self._pad_id
        )
        self._audio_token_id = self._find_audio_token_id()
        self._yes_no: tuple[list[int], list[int]] | None = None
        # audio prefixes of the latest clips (as many as a batch of clips holds), by audio key
        self._heads: dict[bytes, list[_Head]] = {}
        self._clips_kept = 1
        self._tail_ok: bool | None = None  # text-tail tokenization checked on a first clip

    # ------------------------------------------------------------------ loading

    @staticmethod
    def _local_path(model_id: str) -> Path | None:
        path = Path(model_id).expanduser()
        if path.is_dir():
            return path
        looks_like_path = (
            model_id.startswith((".", "/", "~"))
            or os.sep in model_id.strip("/").replace("/", "", 1)
            or not _HUB_ID.match(model_id)
        )
        if looks_like_path or path.exists():
            raise ModelLoadError(f"model directory not found: {model_id}")
        return None

    def _sources(self) -> list[dict[str, Any]]:
        """from_pretrained kwargs to try in order: local cache first, so nothing hangs."""
        base: dict[str, Any] = {"trust_remote_code": self.trust_remote_code}
        if self.revision:
            base["revision"] = self.revision
        if self._local_dir is not None:
            return [{**base, "local_files_only": True}]
        tries = [{**base, "local_files_only": True}]
        if not _offline():
            tries.append(base)
        return tries

    def _src(self) -> str:
        return str(self._local_dir) if self._local_dir is not None else self.model_id

    def _load_error(self, what: str, exc: BaseException) -> ModelLoadError:
        msg = one_line(exc)
        if "trust_remote_code" in str(exc) or "custom code" in str(exc):
            return ModelLoadError(
                f"{self.model_id} needs trust_remote_code=True (its own code would run); "
                "enable it only if you trust the repository"
            )
        if self._local_dir is None and _offline():
            return ModelLoadError(
                f"cannot load {what} for {self.model_id}: not in the local Hugging Face cache "
                f"and HF_HUB_OFFLINE is set ({msg})"
            )
        family = getattr(self, "family", None)  # None while the config itself loads
        missing = isinstance(exc, ImportError) or "requires the" in msg or "pip install" in msg
        if family is not None and family.extra and missing:
            msg += f" (the {family.name} family needs: pip install 'ambiscope[{family.extra}]')"
        return ModelLoadError(f"cannot load {what} for {self.model_id}: {msg}")

    def _from_pretrained(self, what: str, loader: Callable[..., T], **kwargs: Any) -> T:
        last: BaseException | None = None
        for source in self._sources():
            try:
                with _quiet_progress():
                    return loader(self._src(), **source, **kwargs)
            except Exception as exc:  # OSError, ValueError, ImportError, hub HTTP errors...
                last = exc
                # Only "not in the local cache" (an OSError) is worth a second, online try.
                if not isinstance(exc, OSError) or "trust_remote_code" in str(exc):
                    break
        assert last is not None
        raise self._load_error(what, last) from last

    def _load_config(self) -> Any:
        return self._from_pretrained("config", AutoConfig.from_pretrained)

    def _load_processor(self) -> Any:
        """``AutoProcessor``, or the family's audio+text assembly (no image/video stacks)."""
        if self.family.processor:
            module, _, attr = self.family.processor.partition(":")
            assemble = getattr(importlib.import_module(module), attr)
            return self._from_pretrained("processor", assemble)
        return self._from_pretrained("processor", AutoProcessor.from_pretrained)

    def _load_model(self) -> Any:
        auto = getattr(transformers, self.family.auto_class)
        model = self._from_pretrained("model", auto.from_pretrained, dtype=self.dtype)
        if self.family.prepare_model:
            module, _, attr = self.family.prepare_model.partition(":")
            prepare = getattr(importlib.import_module(module), attr)
            self._from_pretrained("model adapters", lambda src, **kw: prepare(model, src, **kw))
        try:
            return model.to(self.device).eval()
        except Exception as exc:
            raise ModelLoadError(
                f"cannot move {self.model_id} to {self.device}: {one_line(exc)}"
            ) from exc

    def _vocab_size(self) -> int:
        """Rows of the LM head (sizes logits chunks); falls back to the text config."""
        with contextlib.suppress(Exception):
            return int(self.lm.get_output_embeddings().weight.shape[0])
        text_config = self.lm.config.get_text_config()
        return int(getattr(text_config, "vocab_size", 0) or len(self.tokenizer))

    def _cache_keyword(self) -> str:
        """transformers 5.x renamed ``past_key_values`` to ``cache`` (old name until 5.40)."""
        params = inspect.signature(self.lm.forward).parameters
        return "cache" if "cache" in params else "past_key_values"

    def _special_ids(self) -> tuple[list[int], int, tuple[int, ...]]:
        """(stop ids, pad id, end-of-turn ids) from the generation config, tokenizer, family.

        The end of turn may be several tokens (a family whose marker is not one special
        token): label scoring then appends all of them and answers are cut where the
        sequence ends. A single-token end of turn is also a stop id for decoding.
        """
        gc = self.lm.generation_config
        eos: list[int] = []
        for value in (gc.eos_token_id, self.tokenizer.eos_token_id):
            if value is None:
                continue
            for v in value if isinstance(value, list | tuple) else [value]:
                if int(v) not in eos:
                    eos.append(int(v))
        eot = self._end_of_turn_ids()
        if eot is not None and len(eot) == 1 and eot[0] not in eos:
            eos.append(eot[0])
        if not eos:
            raise ModelLoadError(f"{self.model_id}: no end-of-sequence token found")
        if eot is None:
            eot = (eos[0],)
            log.warning(
                "%s: no end-of-turn marker in the family table or the chat template; label "
                "scoring closes answers with the end-of-sequence token %r",
                self.model_id,
                self.tokenizer.convert_ids_to_tokens(eos[0]),
            )
        pad = gc.pad_token_id if gc.pad_token_id is not None else self.tokenizer.pad_token_id
        pad = int(pad[0] if isinstance(pad, list) else pad) if pad is not None else eos[0]
        return eos, pad, eot

    def _end_of_turn_ids(self) -> tuple[int, ...] | None:
        """The tokens closing an assistant turn: the family table's marker (one token or
        several), else the special token the chat template puts after an answer."""
        if self.family.end_of_turn:
            ids = self.tokenizer.encode(self.family.end_of_turn, add_special_tokens=False)
            if ids:
                return tuple(int(i) for i in ids)
        marker = "\u00a7ambiscope\u00a7"
        chat = [{"role": "user", "content": "x"}, {"role": "assistant", "content": marker}]
        specials = set(self.tokenizer.all_special_ids)
        for holder in (self.processor, self.tokenizer):
            with contextlib.suppress(Exception):
                text = holder.apply_chat_template(chat, tokenize=False)
                tail = text.split(marker, 1)[1]
                ids = self.tokenizer.encode(tail, add_special_tokens=False)
                if ids and ids[0] in specials:
                    return (int(ids[0]),)
        return None

    def _find_audio_token_id(self) -> int | None:
        """The audio placeholder id, so shared-prefix batching can check it covers the audio."""
        for holder in (self.lm.config, self.model.config, self.processor):
            for attr in ("audio_token_id", "audio_token_index"):
                value = getattr(holder, attr, None)
                if isinstance(value, int):
                    return value
        return None

    # ------------------------------------------------------------------ protocol basics

    @property
    def sample_rate(self) -> int:
        extractor = self._feature_extractor()
        rate = getattr(extractor, "sampling_rate", None)
        return int(rate) if rate else 16000

    @property
    def max_audio_seconds(self) -> float | None:
        if self.family.max_audio_seconds is not None:
            return self.family.max_audio_seconds
        extractor = self._feature_extractor()
        chunk = getattr(extractor, "chunk_length", None)
        if chunk:
            return float(chunk)
        n_samples = getattr(extractor, "n_samples", None)
        if n_samples:
            return float(n_samples) / self.sample_rate
        return None

    def _feature_extractor(self) -> Any:
        for attr in ("feature_extractor", "audio_processor", "_audio_processor"):
            value = getattr(self.processor, attr, None)
            if value is not None:
                return value
        return None

    def describe(self) -> dict[str, Any]:
        config = self.model.config
        commit = getattr(config, "_commit_hash", None)
        if commit is None and self._local_dir is not None:
            match = re.search(r"snapshots/([0-9a-f]{40})", self._local_dir.resolve().as_posix())
            commit = match.group(1) if match else _local_fingerprint(self._local_dir)
        return {
            "backend": self.name,
            "model_id": self.model_id,
            "revision": self.revision,
            "commit": commit,
            "model_type": self.model_type,
            "model_class": type(self.model).__name__,
            "family": self.family.name,
            "family_verified": self.family.verified,
            "encode_once": self.family.encode_once,
            "dtype": str(self.dtype).removeprefix("torch."),
            "device": str(self.device),
            "parameters": int(sum(p.numel() for p in self.model.parameters())),
            "sample_rate": self.sample_rate,
            "max_audio_seconds": self.max_audio_seconds,
            "hub_generation_defaults_ignored": self._hub_generation_defaults,
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "trust_remote_code": self.trust_remote_code,
        }

    def close(self) -> None:
        """Drop the model so its (GPU) memory can be reclaimed."""
        for attr in ("lm", "model"):
            if hasattr(self, attr):
                delattr(self, attr)
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    # ------------------------------------------------------------------ inputs

    def _samples(self, audio: AudioInput) -> np.ndarray:
        """Float32 mono at the model rate (the caller resamples; this is the safety net)."""
        samples = np.asarray(audio.samples, dtype=np.float32)
        if samples.ndim != 1:
            raise BackendError(f"expected mono audio, got shape {samples.shape}")
        if samples.size == 0:
            raise BackendError("audio has no samples")
        if audio.sample_rate != self.sample_rate:
            samples = resample(samples, audio.sample_rate, self.sample_rate)
        return samples

    def _messages(self, samples: np.ndarray, prompt: ChatPrompt) -> list[dict]:
        value: Any = samples
        if self.family.audio_key == "base64":
            value = _wav_base64(samples, self.sample_rate)
        return build_messages(self.family, prompt.user, prompt.system, value)

    def build_inputs(self, audio: AudioInput, prompt: ChatPrompt) -> dict[str, torch.Tensor]:
        """Processor inputs (on the model device) for one (audio, prompt) pair.

        The prompt ends where the answer starts: after the generation header plus
        ``prompt.assistant_prefix``. This always runs the processor (feature extraction);
        the sampling and scoring paths go through `_encode`, which reuses a clip's.
        """
        return self._process(self._samples(audio), prompt)

    def _process(self, samples: np.ndarray, prompt: ChatPrompt) -> dict[str, Any]:
        fam = self.family
        messages = self._messages(samples, prompt)
        prefix = prompt.assistant_prefix
        try:
            if fam.render == "template":
                batch = self._template_inputs(messages, prefix)
            else:
                text = self.processor.apply_chat_template(
                    messages, add_generation_prompt=True, tokenize=False
                )
                call: dict[str, Any] = {"text": [text + prefix], "audio": [samples]}
                if fam.pass_sampling_rate:
                    call["sampling_rate"] = self.sample_rate
                batch = self.processor(**call, return_tensors="pt")
        except BackendError:
            raise
        except Exception as exc:
            raise BackendError(f"cannot build model inputs: {one_line(exc)}") from exc
        return self._to_device(dict(batch))

    def _render_text(self, samples: np.ndarray, prompt: ChatPrompt) -> str | None:
        """The prompt as the text the processor tokenizes (None if the family has none)."""
        messages = self._messages(samples, prompt)
        prefix = prompt.assistant_prefix
        with contextlib.suppress(Exception):
            if self.family.render != "template":
                text = self.processor.apply_chat_template(
                    messages, add_generation_prompt=True, tokenize=False
                )
                return str(text) + prefix
            if prefix:
                answer = {"role": "assistant", "content": [{"type": "text", "text": prefix}]}
                return str(
                    self.processor.apply_chat_template(
                        [*messages, answer], tokenize=False, continue_final_message=True
                    )
                )
            return str(
                self.processor.apply_chat_template(
                    messages, tokenize=False, add_generation_prompt=True
                )
            )
        return None

    def _audio_marker(self) -> str | None:
        """The audio placeholder as it appears in the rendered (unexpanded) prompt text."""
        if self.family.placeholder:
            return self.family.placeholder
        if self._audio_token_id is None:
            return None
        token = self.tokenizer.convert_ids_to_tokens(self._audio_token_id)
        return token if isinstance(token, str) else None

    def _encode(self, audio: AudioInput, prompt: ChatPrompt) -> _Prompt:
        """The prompt's inputs, reusing the clip's processed audio and prefilled prefix.

        The first prompt of a clip runs the processor and prefills its audio prefix once
        (`_head_for`). A later prompt of the same clip whose rendered text starts with the
        same head (same system text, same audio) is the head's ids plus its text tail
        tokenized alone: the feature extractor and the audio encoder do not run again.
        """
        samples = self._samples(audio)
        key = _audio_key(samples)
        text = self._render_text(samples, prompt) if self.family.encode_once else None
        if text is not None and self._tail_ok:
            for head in self._heads.get(key, ()):
                if head.text is not None and text.startswith(head.text):
                    tail = self.tokenizer.encode(text[len(head.text) :], add_special_tokens=False)
                    return _Prompt(_with_text(head.aligned, tail), key, text, head)
        p = _Prompt(self._process(samples, prompt), key, text)
        if self.family.encode_once:
            p.head = self._head_for(p)  # encode the audio now: the clip's next prompts reuse it
        return p

    def _template_inputs(self, messages: list[dict], prefix: str) -> Any:
        kwargs: dict[str, Any] = {"tokenize": True, "return_dict": True, "return_tensors": "pt"}
        if prefix:
            answer = {"role": "assistant", "content": [{"type": "text", "text": prefix}]}
            messages = [*messages, answer]
            kwargs["continue_final_message"] = True
        else:
            kwargs["add_generation_prompt"] = True
        if self.family.pass_sampling_rate:
            kwargs["processor_kwargs"] = {"sampling_rate": self.sample_rate}
        return self.processor.apply_chat_template(messages, **kwargs)

    def _to_device(self, batch: dict[str, Any]) -> dict[str, Any]:
        out = {}
        for key, value in batch.items():
            if isinstance(value, torch.Tensor):
                value = value.to(self.device)
                if value.is_floating_point():
                    value = value.to(self.dtype)
            out[key] = value
        return out

    @staticmethod
    def _token_aligned(inputs: dict[str, Any]) -> dict[str, torch.Tensor]:
        """Inputs laid out per text token (ids, mask, token types): sliced with the ids.

        Everything else (audio features and their masks) belongs to the prefill only.
        """
        ids = inputs["input_ids"]
        return {
            k: v
            for k, v in inputs.items()
            if k in _TOKEN_KEYS and isinstance(v, torch.Tensor) and v.shape == ids.shape
        }

    # ------------------------------------------------------------------ core passes

    def _cache_of(self, out: Any) -> Any:
        cache = getattr(out, "cache", None)
        if cache is None:
            cache = getattr(out, "past_key_values", None)
        if cache is None:
            raise BackendError("the model returned no KV cache; encode-once is unavailable")
        return cache

    def _prefill(self, p: _Prompt, upto: int) -> tuple[Any, torch.Tensor]:
        """(1-row cache over the first ``upto`` prompt tokens, last position's logits).

        Starts from the clip's audio prefix (`_Head`, encoded once per clip) and feeds the
        text between it and ``upto``; the returned cache may be the head's own, so callers
        only ever run on `caches.expanded` copies of it.
        """
        head = self._head_for(p)
        if head is None or head.length > upto:
            if not p.has_audio:
                raise BackendError("internal error: a prompt without audio needs its clip's head")
            return self._forward_prefix(p.inputs, upto)
        for module, value in head.positions:
            module.rope_deltas = value
        if head.length == upto:
            return head.cache, head.logits
        ids = p.ids[:, head.length : upto]
        kwargs: dict[str, Any] = {"logits_to_keep": 1} if self._keeps_logits else {}
        with torch.no_grad():
            out = self.lm(
                input_ids=ids,
                **{self._cache_kw: caches.expanded(head.cache, 1)},
                use_cache=True,
                return_dict=True,
                **kwargs,
            )
        return self._cache_of(out), out.logits[:, -1].float()

    def _head_for(self, p: _Prompt) -> _Head | None:
        """The clip's audio prefix for ``p``: its own, the current clip's, or a new one."""
        if p.head is not None:
            return p.head
        heads = self._heads.pop(p.key, [])
        self._heads[p.key] = heads  # most recently used last
        while len(self._heads) > self._clips_kept:  # older clips' prefixes are dropped
            del self._heads[next(iter(self._heads))]
        for head in heads:
            if p.length > head.length and torch.equal(p.ids[:, : head.length], head.ids):
                return head
        if self._audio_token_id is None or not self.family.encode_once or not p.has_audio:
            return None
        where = (p.ids[0] == self._audio_token_id).nonzero()
        if not where.numel() or int(where[-1]) + 1 >= p.length:
            return None
        length = int(where[-1]) + 1
        text = None
        marker = self._audio_marker()
        if p.text is not None and marker and marker in p.text:
            cut = p.text.rindex(marker) + len(marker)
            text = p.text[:cut]
            # A processor may close the audio run with tokens of its own (Gemma 3n:
            # <end_of_audio> + "\n\n"): they belong to the head when the prompt's ids
            # end exactly with the text tail tokenized alone.
            tail = self.tokenizer.encode(p.text[cut:], add_special_tokens=False)
            split = p.length - len(tail)
            if tail and split > length and p.ids[0, split:].tolist() == tail:
                length = split
            if self._tail_ok is None:
                self._tail_ok = self._tail_matches(p, length, p.text[cut:])
        cache, logits = self._forward_prefix(p.inputs, length)
        aligned = {k: v[:, :length] for k, v in self._token_aligned(p.inputs).items()}
        positions = tuple(
            (m, m.rope_deltas)
            for m in (self.lm, getattr(self.lm, "model", None))
            if m is not None and hasattr(m, "rope_deltas")
        )
        head = _Head(p.key, p.ids[:, :length], aligned, text, cache, logits, positions)
        heads.append(head)
        return head

    def _tail_matches(self, p: _Prompt, length: int, tail: str) -> bool:
        """Checked once: the text after the audio tokenizes alone exactly as the processor
        tokenized it in context (else later prompts of a clip run the processor again)."""
        aligned = self._token_aligned(p.inputs)
        ids = self.tokenizer.encode(tail, add_special_tokens=False)
        joined = _with_text({k: v[:, :length] for k, v in aligned.items()}, ids)
        same = joined.keys() == aligned.keys() and all(
            torch.equal(joined[k], aligned[k]) for k in aligned
        )
        if not same:
            log.info(
                "%s: prompt text after the audio does not tokenize alone as in context; "
                "each prompt of a clip runs the processor (the audio is still encoded once)",
                self.model_id,
            )
        return same

    def _forward_prefix(self, inputs: dict[str, Any], upto: int) -> tuple[Any, torch.Tensor]:
        """Forward the first ``upto`` prompt tokens with the audio; (1-row cache, last logits)."""
        kwargs = dict(inputs)
        for key, value in self._token_aligned(inputs).items():
            kwargs[key] = value[:, :upto]
        if self._keeps_logits:  # only the last position's logits are needed
            kwargs["logits_to_keep"] = 1
        with torch.no_grad():
            out = self.lm(**kwargs, use_cache=True, return_dict=True)
        return self._cache_of(out), out.logits[:, -1].float()

    def _extend(self, cache: Any, suffixes: list[list[int]]) -> torch.Tensor:
        """Logits [rows, max_len, V] after feeding right-padded suffixes on a shared cache.

        Right padding needs no attention mask: attention is causal, so padding after a row's
        last real token never influences that row's real positions.
        """
        width = max(len(s) for s in suffixes)
        ids = torch.full((len(suffixes), width), self._pad_id, dtype=torch.long)
        for row, suffix in enumerate(suffixes):
            ids[row, : len(suffix)] = torch.tensor(suffix, dtype=torch.long)
        expanded = caches.expanded(cache, len(suffixes))
        with torch.no_grad():
            out = self.lm(
                input_ids=ids.to(self.device),
                **{self._cache_kw: expanded},
                use_cache=True,
                return_dict=True,
            )
        return out.logits.float()

    def _full_logits(self, inputs: dict[str, Any], extra: list[int]) -> torch.Tensor:
        """Logits [1, L + len(extra), V] of a full forward (the no-cache fallback)."""
        kwargs = dict(inputs)
        if extra:
            kwargs.update(_with_text(self._token_aligned(inputs), extra))
        with torch.no_grad():
            out = self.lm(**kwargs, use_cache=False, return_dict=True)
        return out.logits.float()

    def _rows_for(self, width: int) -> int:
        """Rows per teacher-forced forward so its fp32 logits stay under ~256 MB."""
        return max(1, _LOGIT_BUDGET // max(1, width * self._vocab))

    def _oom_retry(self, n: int, run: Callable[[int], T], cap: int | None = None) -> T:
        """Run ``run(chunk)`` over n rows, halving the chunk on CUDA OOM (sticky).

        ``cap`` bounds the chunk for this call only (memory of the logits it returns).
        """
        size = max(1, min(n, self.batch_size or n, cap or n))
        while True:
            try:
                return run(size)
            except torch.OutOfMemoryError as exc:
                if size == 1:
                    raise BackendError(
                        "CUDA out of memory even with batch size 1; use a smaller model, "
                        "dtype=bfloat16 or shorter max_new_tokens"
                    ) from exc
                size = max(1, size // 2)
                self.batch_size = size
                log.warning("CUDA out of memory; retrying with batch size %d", size)
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()

    # ------------------------------------------------------------------ sampling

    def generation_config_for(self, params: GenerationParams) -> GenerationConfig:
        """The decoding spec ``generate`` runs with (tests use it as the reference).

        Everything is explicit so neither the checkpoint's nor transformers' defaults
        (top_k=50!) leak in. ``generate`` itself always decodes greedily: sampled runs add
        `RowSampler` (`sampler_for`), which applies temperature and top-p (top_k is off)
        and picks each row's token from the row's own seed.
        """
        return GenerationConfig(
            max_new_tokens=params.max_new_tokens,
            eos_token_id=self._eos_ids,
            pad_token_id=self._pad_id,
            repetition_penalty=1.0,
            do_sample=False,
        )

    def sampler_for(self, params: GenerationParams, seed: int, first: int, rows: int) -> RowSampler:
        """The sampler of candidates ``first .. first + rows - 1`` of a clip seeded ``seed``."""
        return self._sampler(params, _row_seeds(seed, first, rows))

    def _sampler(self, params: GenerationParams, seeds: list[int]) -> RowSampler:
        banned = () if self._audio_token_id is None else (self._audio_token_id,)
        return RowSampler(seeds, params.temperature, params.top_p, banned)

    def sample(
        self, audio: AudioInput, prompt: ChatPrompt, params: GenerationParams
    ) -> list[Candidate]:
        try:
            p = self._encode(audio, prompt)
            if params.search == "beam":
                return self._beam(p, params)
            return self._sample(p, params)
        except BackendError:
            raise
        except Exception as exc:
            raise BackendError(f"generation failed: {one_line(exc)}") from exc

    def _sample(self, p: _Prompt, params: GenerationParams) -> list[Candidate]:
        seed = params.seed if params.seed is not None else secrets.randbelow(2**31)
        greedy = params.temperature == 0
        # Greedy decoding is deterministic: decode one row and repeat it.
        rows = 1 if greedy else params.n
        gc = self.generation_config_for(params)
        encode_once = self._can_encode_once(p)
        cache = self._prefill(p, p.length - 1)[0] if encode_once else None

        def run(chunk: int) -> tuple[int, list[tuple[torch.Tensor, torch.Tensor]]]:
            parts, first = [], 0
            for k in _chunks(rows, chunk):
                sampler = None if greedy else self.sampler_for(params, seed, first, k)
                parts.append(self._decode(p, cache, k, gc, sampler))
                first += k
            return chunk, parts

        chunk, parts = self._oom_retry(rows, run)
        extra = {
            "seed": seed,
            "search": "greedy" if greedy else "sample",
            "encode_once": encode_once,
            "decode_batch": chunk,
        }
        cands = [c for new, lp in parts for c in self._candidates(new, lp, extra)]
        if greedy:  # n identical answers, as independent objects
            return [
                dataclasses.replace(cands[0], extra=dict(cands[0].extra)) for _ in range(params.n)
            ]
        return cands

    def clips_per_batch(self, params: GenerationParams, requested: int | None = None) -> int:
        """Clips `sample_batch` decodes together: ``requested`` (a run's ``--batch-clips``),
        else ``batch_clips``, else from free memory.

        One clip holds N rows of KV cache for its prompt + answer and one step of logits;
        a quarter of the free memory (GPU, else RAM) is given to a batch, at most 16 clips.
        Models whose positions depend on the clip (multimodal RoPE deltas) take one at a time.
        """
        if not self._batchable(params):
            return 1
        if requested is not None or self.batch_clips is not None:
            return requested or self.batch_clips or 1
        text = self.lm.config.get_text_config()
        layers = int(getattr(text, "num_hidden_layers", 32))
        heads = int(
            getattr(text, "num_key_value_heads", None) or getattr(text, "num_attention_heads", 32)
        )
        dim = int(getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads)
        positions = 1024 + params.max_new_tokens  # a generous prompt: the audio + the text
        per_row = 2 * layers * heads * dim * positions * self.dtype.itemsize + 4 * self._vocab
        rows = 1 if params.temperature == 0 else params.n
        return max(1, min(16, int(0.25 * _free_memory(self.device) // (rows * per_row))))

    def _batchable(self, params: GenerationParams) -> bool:
        positions_per_clip = any(
            hasattr(m, "rope_deltas") for m in (self.lm, getattr(self.lm, "model", None))
        )
        return params.search == "sample" and self.family.encode_once and not positions_per_clip

    def sample_batch(
        self,
        items: list[tuple[AudioInput, ChatPrompt]],
        params: GenerationParams,
        seeds: list[int | None] | None = None,
    ) -> list[list[Candidate]]:
        """`sample` for several clips, their candidates decoded in ONE batch.

        Each clip's prompt is prefilled on its own (one row, its audio encoded once) and
        the caches are stacked, left-padded to the longest prompt and masked, so the
        decode steps of all clips share one forward. Greedy answers equal one-clip calls;
        seeded samples too, since every candidate draws from its own seed (``seeds``: each
        clip's seed, else ``params.seed`` for all).
        """
        per_clip = [
            params if seed is None else dataclasses.replace(params, seed=seed)
            for seed in (seeds or [None] * len(items))
        ]
        if len(items) <= 1 or not self._batchable(params):
            return [self.sample(a, pr, pa) for (a, pr), pa in zip(items, per_clip, strict=True)]
        self._clips_kept = max(self._clips_kept, len(items))
        try:
            prompts = [self._encode(audio, prompt) for audio, prompt in items]
            if not all(self._can_encode_once(p) for p in prompts):
                return [self.sample(a, pr, pa) for (a, pr), pa in zip(items, per_clip, strict=True)]
            return self._sample_many(prompts, per_clip)
        except BackendError:
            raise
        except Exception as exc:
            raise BackendError(f"generation failed: {one_line(exc)}") from exc

    def _sample_many(
        self, prompts: list[_Prompt], per_clip: list[GenerationParams]
    ) -> list[list[Candidate]]:
        params = per_clip[0]  # all but the seed are shared
        seeds = [pa.seed if pa.seed is not None else secrets.randbelow(2**31) for pa in per_clip]
        greedy = params.temperature == 0
        rows = 1 if greedy else params.n
        width = max(p.length for p in prompts)
        prefixes = [self._prefill(p, p.length - 1)[0] for p in prompts]
        cache = caches.left_padded(prefixes, [rows] * len(prompts), width - 1)
        ids = torch.full((len(prompts), width), self._pad_id, dtype=torch.long, device=self.device)
        mask = torch.zeros_like(ids)
        for row, p in enumerate(prompts):
            ids[row, width - p.length :] = p.ids[0]
            mask[row, width - p.length :] = 1
        processors: list[LogitsProcessor] = [_LogprobRecorder()]
        if not greedy:
            row_seeds = [s for seed in seeds for s in _row_seeds(seed, 0, rows)]
            processors.append(self._sampler(params, row_seeds))
        gc = self.generation_config_for(params)
        gc.return_dict_in_generate = True
        with torch.no_grad():
            out = self.lm.generate(
                input_ids=ids.repeat_interleave(rows, 0),
                attention_mask=mask.repeat_interleave(rows, 0),
                **{self._cache_kw: cache},
                generation_config=gc,
                logits_processor=transformers.LogitsProcessorList(processors),
            )
        new = out.sequences[:, width:].cpu()
        logps = processors[0].finish(new)  # type: ignore[attr-defined]
        result = []
        for i, seed in enumerate(seeds):
            extra = {
                "seed": seed,
                "search": "greedy" if greedy else "sample",
                "encode_once": True,
                "decode_batch": rows * len(prompts),
                "batch_clips": len(prompts),
            }
            part = slice(i * rows, (i + 1) * rows)
            cands = self._candidates(new[part], logps[part], extra)
            if greedy:
                cands = [
                    dataclasses.replace(cands[0], extra=dict(cands[0].extra))
                    for _ in range(params.n)
                ]
            result.append(cands)
        return result

    def _can_encode_once(self, p: _Prompt) -> bool:
        """Prefill prompt[:-1] only if the last prompt token is plain text (never audio)."""
        ids = p.ids
        if not self.family.encode_once or ids.shape[1] < 2:
            return False
        return self._audio_token_id is None or int(ids[0, -1]) != self._audio_token_id

    def _decode(
        self,
        p: _Prompt,
        cache: Any,
        rows: int,
        gc: GenerationConfig,
        sampler: RowSampler | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Decode ``rows`` continuations; returns (new tokens [rows, T], log-probs [rows, T])."""
        recorder = _LogprobRecorder()
        gc = copy.deepcopy(gc)
        gc.return_dict_in_generate = True
        processors = [recorder] if sampler is None else [recorder, sampler]
        common = {
            "generation_config": gc,
            "logits_processor": transformers.LogitsProcessorList(processors),
        }
        with torch.no_grad():
            if cache is not None:
                aligned = {k: v.repeat(rows, 1) for k, v in self._token_aligned(p.inputs).items()}
                out = self.lm.generate(
                    **aligned, **{self._cache_kw: caches.expanded(cache, rows)}, **common
                )
            else:  # the full inputs, audio features included, once per row
                out = self.lm.generate(**repeat_rows(p.inputs, rows), **common)
        new = out.sequences[:, p.length :].cpu()
        return new, recorder.finish(new)

    def _first_stop(self, tokens: torch.Tensor) -> tuple[int, int] | None:
        """(start, length) of the first stop: an end-of-sequence id, or the end-of-turn
        sequence when it is several tokens (decoding cannot stop on it by itself)."""
        ids = tokens.numpy()
        hits = np.flatnonzero(np.isin(ids, self._eos_ids))
        stop = (int(hits[0]), 1) if hits.size else None
        seq = self._eot_ids
        if len(seq) > 1:
            for start in range(len(ids) - len(seq) + 1):
                if stop is not None and start >= stop[0]:
                    break
                if tuple(ids[start : start + len(seq)].tolist()) == seq:
                    return start, len(seq)
        return stop

    def _candidates(
        self, new: torch.Tensor, logps: torch.Tensor, extra: dict[str, Any]
    ) -> list[Candidate]:
        """Text and scores per row; the stop token is scored and counted, not shown."""
        out = []
        for row in range(new.shape[0]):
            stop = self._first_stop(new[row])
            n_tok = new.shape[1] if stop is None else stop[0] + stop[1]
            token_ids = new[row, :n_tok].tolist()
            body = token_ids if stop is None else token_ids[: stop[0]]
            text = self.tokenizer.decode(body, skip_special_tokens=True)
            lp = float(logps[row, :n_tok].sum()) if n_tok else 0.0
            out.append(
                Candidate(
                    text=text,
                    logprob=lp,
                    logprob_norm=lp / n_tok if n_tok else 0.0,
                    n_tokens=n_tok,
                    extra={
                        **extra,
                        "finish_reason": "length" if stop is None else "stop",
                        "token_ids": token_ids,
                    },
                )
            )
        return out

    def _beam(self, p: _Prompt, params: GenerationParams) -> list[Candidate]:
        """B beams best first; encode-once like sampling (cache pre-expanded to B rows)."""
        beams = params.beams
        if beams == 1:  # one beam is greedy decoding (generate has no beam outputs then)
            greedy = GenerationParams(n=1, temperature=0, max_new_tokens=params.max_new_tokens)
            (only,) = self._sample(p, greedy)
            only.extra["search"] = "beam"
            return [only]
        gc = self.generation_config_for(
            GenerationParams(n=1, temperature=0, max_new_tokens=params.max_new_tokens)
        )
        gc.num_beams = beams
        gc.num_return_sequences = beams
        gc.length_penalty = 1.0
        gc.output_scores = True
        gc.return_dict_in_generate = True
        prompt_len = p.length
        encode_once = self._can_encode_once(p)

        def run(_: int) -> Any:
            with torch.no_grad():
                if encode_once:
                    cache = self._prefill(p, prompt_len - 1)[0]
                    aligned = self._token_aligned(p.inputs)
                    return self.lm.generate(
                        **aligned,
                        **{self._cache_kw: caches.expanded(cache, beams)},
                        generation_config=gc,
                    )
                return self.lm.generate(**p.inputs, generation_config=gc)

        out = self._oom_retry(1, run)
        steps = (
            self.lm.compute_transition_scores(
                out.sequences, out.scores, out.beam_indices, normalize_logits=False
            )
            .float()
            .cpu()
        )
        new = out.sequences[:, prompt_len:].cpu()
        valid = (out.beam_indices[:, : new.shape[1]] >= 0).cpu()
        steps = torch.where(valid, steps, torch.zeros_like(steps))
        cands = self._candidates(new, steps, {"search": "beam", "encode_once": encode_once})
        scored = []
        for i, cand in enumerate(cands):
            cand.extra["beam_score"] = float(out.sequences_scores[i])
            scored.append(cand)
        scored.sort(key=lambda c: c.extra["beam_score"], reverse=True)
        return scored

    # ------------------------------------------------------------------ label likelihood

    def label_token_ids(self, prompt: ChatPrompt, label: str) -> list[int]:
        """Token ids of ``label`` as the answer's continuation, plus the end-of-turn token.

        Tokenized together with the assistant prefix and split off, so a label right after
        ``"Answer:"`` gets the same tokens it would get in running text. The end-of-turn
        token(s) make the labels mutually exclusive complete answers: without it "sad" would also
        collect the mass of "sadness" (its extension) and prefixes would be favoured.
        """
        prefix = prompt.assistant_prefix
        head = self.tokenizer.encode(prefix, add_special_tokens=False) if prefix else []
        both = self.tokenizer.encode(prefix + label, add_special_tokens=False)
        if both[: len(head)] == head and len(both) > len(head):
            ids = both[len(head) :]
        else:
            ids = self.tokenizer.encode(label, add_special_tokens=False)
        if not ids:
            raise BackendError(f"label {label!r} tokenizes to nothing")
        return [int(i) for i in ids] + list(self._eot_ids)

    def score_labels(self, audio: AudioInput, prompt: ChatPrompt, labels: list[str]) -> np.ndarray:
        if not labels:
            return np.zeros(0, dtype=np.float64)
        try:
            p = self._encode(audio, prompt)
            conts = [self.label_token_ids(prompt, lab) for lab in labels]
            if self.family.encode_once:
                return self._score_cached(p, conts)
            return np.array([self._score_full(p.inputs, c) for c in conts], dtype=np.float64)
        except BackendError:
            raise
        except Exception as exc:
            raise BackendError(f"label scoring failed: {one_line(exc)}") from exc

    def _score_cached(self, p: _Prompt, conts: list[list[int]]) -> np.ndarray:
        cache, last = self._prefill(p, p.length)
        first = torch.log_softmax(last[0], dim=-1).cpu()
        scores = np.array([float(first[c[0]]) for c in conts], dtype=np.float64)
        rest = [(i, c) for i, c in enumerate(conts) if len(c) > 1]
        if not rest:
            return scores

        def run(chunk: int) -> np.ndarray:
            add = np.zeros(len(conts), dtype=np.float64)
            for start in range(0, len(rest), chunk):
                part = rest[start : start + chunk]
                logits = self._extend(cache, [c[:-1] for _, c in part])
                logp = torch.log_softmax(logits, dim=-1).cpu()
                for row, (i, c) in enumerate(part):
                    targets = torch.tensor(c[1:])
                    add[i] = float(logp[row, : len(targets)].gather(1, targets[:, None]).sum())
            return add

        width = max(len(c) for _, c in rest) - 1
        return scores + self._oom_retry(len(rest), run, cap=self._rows_for(width))

    def _score_full(self, inputs: dict[str, Any], cont: list[int]) -> float:
        """Naive path: one full forward of prompt + label (families without encode-once)."""
        prompt_len = inputs["input_ids"].shape[1]
        logits = self._full_logits(inputs, cont[:-1])
        logp = torch.log_softmax(logits[0, prompt_len - 1 :], dim=-1).cpu()
        targets = torch.tensor(cont)
        return float(logp[: len(cont)].gather(1, targets[:, None]).sum())

    # ------------------------------------------------------------------ verifier

    def yes_no_token_ids(self) -> tuple[list[int], list[int]]:
        """Single-token spellings of Yes / No (probabilities of all spellings are summed)."""
        if self._yes_no is None:
            yes = self._spellings(_YES)
            no = self._spellings(_NO)
            if not yes or not no:  # no single-token spelling: fall back to first tokens
                yes = [self.tokenizer.encode("Yes", add_special_tokens=False)[0]]
                no = [self.tokenizer.encode("No", add_special_tokens=False)[0]]
            if set(yes) & set(no):
                raise BackendError("the tokenizer cannot tell 'Yes' from 'No' by their first token")
            self._yes_no = (yes, no)
        return self._yes_no

    def _spellings(self, words: tuple[str, ...]) -> list[int]:
        ids: list[int] = []
        for word in words:
            tok = self.tokenizer.encode(word, add_special_tokens=False)
            if len(tok) == 1 and int(tok[0]) not in ids:
                ids.append(int(tok[0]))
        return ids

    def verify(self, audio: AudioInput, prompts: list[ChatPrompt]) -> np.ndarray:
        if not prompts:
            return np.zeros(0, dtype=np.float64)
        try:
            logits = self._next_token_logits([self._encode(audio, p) for p in prompts])
            yes, no = self.yes_no_token_ids()
            logp = torch.log_softmax(logits, dim=-1)
            ly = torch.logsumexp(logp[:, yes], dim=-1)
            ln = torch.logsumexp(logp[:, no], dim=-1)
            return torch.sigmoid(ly - ln).double().cpu().numpy()
        except BackendError:
            raise
        except Exception as exc:
            raise BackendError(f"verifier scoring failed: {one_line(exc)}") from exc

    def _shared_prefix(self, ids: list[torch.Tensor]) -> int | None:
        """Length of the common token prefix usable for one shared prefill, or None.

        Every row keeps at least one own token, and the prefix must hold every audio
        placeholder (the suffixes are fed without audio features).
        """
        if not self.family.encode_once or self._audio_token_id is None:
            return None
        shortest = min(len(x) for x in ids)
        first = ids[0]
        common = shortest - 1
        for other in ids[1:]:
            diff = (first[:shortest] != other[:shortest]).nonzero()
            if diff.numel():
                common = min(common, int(diff[0]))
        if common < 1:
            return None
        if any((x[common:] == self._audio_token_id).any() for x in ids):
            return None
        return common

    def _next_token_logits(self, batches: list[_Prompt]) -> torch.Tensor:
        ids = [b.ids[0].cpu() for b in batches]
        common = self._shared_prefix(ids)
        head = self._head_for(batches[0]) if common is not None else None
        if common is not None and head is not None and common < head.length:
            common = None  # prompts part inside the audio prefix: each runs on its own
        if common is None:
            if not self.family.encode_once:
                rows = [self._full_logits(b.inputs, [])[0, -1] for b in batches]
            else:
                rows = [self._prefill(b, b.length)[1][0] for b in batches]
            return torch.stack(rows).cpu()
        cache, _ = self._prefill(batches[0], common)
        suffixes = [x[common:].tolist() for x in ids]

        def run(chunk: int) -> torch.Tensor:
            out = []
            for start in range(0, len(suffixes), chunk):
                part = suffixes[start : start + chunk]
                logits = self._extend(cache, part)
                last = torch.tensor([len(s) - 1 for s in part], device=logits.device)
                out.append(logits[torch.arange(len(part), device=logits.device), last].cpu())
            return torch.cat(out)

        width = max(len(x) for x in suffixes)
        return self._oom_retry(len(suffixes), run, cap=self._rows_for(width))
