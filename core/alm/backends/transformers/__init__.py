"""Local models through Hugging Face transformers (the implementation is `backend.py`).

Registered lazily so that listing backends does not import torch: the class is imported
the first time a run opens this backend.
"""

from ambiscope.core.alm import BACKENDS

BACKENDS.add("transformers", "ambiscope.core.alm.backends.transformers.backend:TransformersBackend")
