"""KV-cache copies for encode-once: share a clip's prompt cache without deep copies.

Encode-once prefills a clip's audio prefix once and then runs several continuations on it:
N sampled answers, the label continuations, the verifier suffixes, several clips decoded
together. Each continuation needs its own cache object (decoding appends to it), but the
prefix must stay intact for the next one.

``copy.deepcopy`` + ``batch_repeat_interleave`` made two copies of the prefix for every
continuation (the deep copy, then the N-row repeat). Dynamic cache layers never write their
tensors in place: ``update`` concatenates and rebinds (``self.keys = torch.cat(...)``). So a
shallow copy of the cache whose layers hold *expanded views* of the prefix tensors is a
valid independent cache at zero memory cost; the first append materialises the N rows once,
which decoding needs anyway. Layer types that might write in place (static, quantized,
linear-attention state) take the safe deep-copy path.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch

# Layers whose update() rebinds new tensors (torch.cat) and never writes in place.
_REBINDING_LAYERS = frozenset({"DynamicLayer", "DynamicSlidingWindowLayer"})


def _shareable(cache: Any) -> bool:
    layers = getattr(cache, "layers", None)
    return bool(layers) and all(type(layer).__name__ in _REBINDING_LAYERS for layer in layers)


def _batched_tensors(layer: Any) -> dict[str, torch.Tensor]:
    """The layer's per-row tensors (keys, values, ...): batch dimension first."""
    return {
        name: value
        for name, value in vars(layer).items()
        if isinstance(value, torch.Tensor) and value.dim() >= 1
    }


def expanded(cache: Any, rows: int) -> Any:
    """An independent cache of ``rows`` rows over a one-row ``cache`` (left intact).

    Zero-copy (expanded views) for dynamic layers; a deep copy for anything else.
    """
    if not _shareable(cache):
        new = copy.deepcopy(cache)
        if rows > 1:
            new.batch_repeat_interleave(rows)
        return new
    new = copy.copy(cache)
    new.layers = []
    for layer in cache.layers:
        clone = copy.copy(layer)
        for name, value in _batched_tensors(layer).items():
            setattr(clone, name, value.expand(rows, *value.shape[1:]))
        new.layers.append(clone)
    return new


def left_padded(caches: Sequence[Any], rows: Sequence[int], length: int) -> Any:
    """One cache stacking several one-row caches, row i repeated ``rows[i]`` times.

    Every cache is left-padded with zeros to ``length`` positions (the caller masks the
    padding with ``attention_mask``), so clips with prompts of different lengths decode in
    one batch. Only dynamic full-attention layers can be stacked this way.
    """
    if not all(_shareable(c) for c in caches) or any(
        type(layer).__name__ != "DynamicLayer" for c in caches for layer in c.layers
    ):
        raise ValueError("only dynamic full-attention caches can be batched across clips")
    new = copy.copy(caches[0])
    new.layers = []
    for index, layer in enumerate(caches[0].layers):
        clone = copy.copy(layer)
        for name in _batched_tensors(layer):
            parts = []
            for cache, n in zip(caches, rows, strict=True):
                value = getattr(cache.layers[index], name)
                pad = length - value.shape[-2]
                if pad:
                    shape = (*value.shape[:-2], pad, value.shape[-1])
                    value = torch.cat([value.new_zeros(shape), value], dim=-2)
                parts.append(value.expand(n, *value.shape[1:]))
            setattr(clone, name, torch.cat(parts, dim=0))
        new.layers.append(clone)
    return new
