"""ambiscope's library: everything a researcher can do, without a user interface.

The front ends in `ambiscope.tui` (the Textual workbench and the click command line) are
thin over this package, and this package is thin over `ambiscope.db` (DESIGN.md, Layout):

- `corpora/`   one file per corpus format, registered in `corpora.FORMATS`
- `reference/` what models are compared with (human, synthetic, combined distributions)
- `metrics/`   each metric declared once in `metrics.METRICS`; one bootstrap engine
- `alm/`       model backends (`alm.BACKENDS`), prompts, parsing, tiny checkpoints
- `scaling/`   test-time scaling: strategies (`scaling.strategies.STRATEGIES`), run specs,
               the resumable clip loop
- `synthetic/` ALM raters as synthetic annotators, alignment, DiME-Aug
- `jobs/`      the durable job queue, job kinds (`jobs.kinds.JOB_KINDS`), the worker
- `export/`    metric tables, reports and subsets (`export.TABLE_FORMATS`,
               `export.SUBSET_FORMATS`)
- `browse/`    the filter language and paged clip queries

Every plug-in point is a `registry.Registry`. Nothing here imports click or textual, and
heavy libraries (torch, transformers) load only inside the backends that need them, so
importing the library is cheap (tests/test_layering.py checks both).
"""
