"""Binary and JSON encodings for workspace columns.

Distributions are stored as little-endian float32 blobs: 4 bytes per label keeps a
150k-clip x 10-label cache at 6 MB (JSON text is ~5x larger and ~10x slower to decode,
measured by bench/bench_foundation.py), and `numpy.frombuffer` decodes a whole column
without a Python loop.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

_DTYPE = np.dtype("<f4")


def encode_dist(values: Sequence[float] | np.ndarray) -> bytes:
    """Encode one distribution vector as a float32 blob."""
    return np.asarray(values, dtype=_DTYPE).tobytes()


def decode_dist(blob: bytes | None) -> np.ndarray | None:
    """Decode one blob back to a float64 vector (None stays None)."""
    if blob is None:
        return None
    return np.frombuffer(blob, dtype=_DTYPE).astype(np.float64)


def decode_many(blobs: Iterable[bytes | None], k: int) -> np.ndarray:
    """Decode a column of blobs into an (n, k) float64 array; NULLs become NaN rows."""
    blobs = list(blobs)
    out = np.full((len(blobs), k), np.nan, dtype=np.float64)
    present = [i for i, b in enumerate(blobs) if b is not None]
    if present:
        joined = b"".join(blobs[i] for i in present)
        values = np.frombuffer(joined, dtype=_DTYPE).reshape(len(present), k)
        out[present] = values
    return out


def encode_many(rows: np.ndarray) -> list[bytes]:
    """Encode each row of an (n, k) array as a blob (NaN rows become None)."""
    arr = np.ascontiguousarray(rows, dtype=_DTYPE)
    nan_rows = np.isnan(arr).any(axis=1)
    return [None if nan_rows[i] else arr[i].tobytes() for i in range(arr.shape[0])]


def dumps(value: Any) -> str:
    """Compact, key-sorted JSON so equal options compare equal as text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def loads(text: str | None, default: Any = None) -> Any:
    """Parse a JSON column, mapping NULL/empty to `default`."""
    if not text:
        return default
    return json.loads(text)
