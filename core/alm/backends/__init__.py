"""One module (or subpackage) per model backend; each registers itself in `BACKENDS`.

`ambiscope.core.alm.BACKENDS` imports every module here the first time it is read, so a
new backend is one new file in this package. A module imported here must stay light: a
backend that needs torch registers a lazy ``"module:Class"`` entry from a small
`__init__` and keeps the heavy code in a sibling module (see `transformers/`).
"""
