"""The `ambiscope` command line, a thin click front end over ambiscope.core.

main.py holds the root group (`--db`, lazy loading of commands by name, the one
error-to-one-line handler); each command family is one module (workspace, corpora,
sampling, jobs, export, synthetic, app); options shared by several commands are declared
once in options.py, with choices read lazily from core's registries.
"""
