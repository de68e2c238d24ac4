"""The backend registry: names without torch, and each backend takes the options it uses."""

from __future__ import annotations

import subprocess
import sys

from ambiscope.core.alm import BACKENDS, create_backend
from ambiscope.core.alm.backends.openai import OpenAIBackend


def test_listing_backends_imports_neither_torch_nor_transformers() -> None:
    code = (
        "import sys\n"
        "from ambiscope.core.alm import BACKENDS\n"
        "names = BACKENDS.names()\n"
        "print(sorted(names), 'torch' in sys.modules, 'transformers' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[0] == "['openai', 'transformers'] False False"


def test_create_backend_passes_only_the_options_the_backend_takes() -> None:
    options = {
        "device": "cuda",
        "dtype": "bfloat16",
        "base_url": "http://127.0.0.1:9/v1",
        "api_key_env": None,
        "concurrency": 2,
        "timeout": 5.0,
        "batch_size": 8,
    }
    backend = create_backend("openai", "some-model", options)
    assert isinstance(backend, OpenAIBackend) and BACKENDS.get("openai") is OpenAIBackend
    assert (backend.base_url, backend.concurrency, backend.timeout) == (
        "http://127.0.0.1:9/v1",
        2,
        5.0,
    )
