"""Metrics comparing human (P) and model (Q) emotion distributions, each declared once.

A metric is one function decorated with `@register_metric(name, title=...,
higher_is_better=..., level="clip"|"corpus", ...)` beside its definition
(ambiscope.core.metrics.functions; any module of this package is discovered). The
declaration is everything the rest of the code needs:

- its metadata: the table title, the direction of improvement, per-clip or corpus-level;
- its value: the mean of per-clip values (`level="clip"`) or one corpus-level number;
- how the bootstrap engines get it per resample: the per-clip statistics whose
  count-weighted sums determine it (`stats`) and the function from those sums to the value
  (`from_sums`); per-clip metrics get both for free. A metric that is no function of sums
  (Spearman's rank correlation) gives an exact `resampler` instead.

`compute_all`, `bootstrap_ci`, `paired_bootstrap`, `metric_table` (resampling.py,
table.py) and the cohort bootstrap behind the benchmark table (bootstrap.py) all read
`METRICS`, so a new metric appears in every one of them, in the CLI's `--metrics` choices
and in the tables' titles and "best value" marks by being declared once.

Importing this package is light (no numpy): listing `METRICS.names()` imports the
definitions, nothing else.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ambiscope.core.registry import Registry

if TYPE_CHECKING:
    from ambiscope.core.metrics.spec import Metric

METRICS: Registry[Metric] = Registry("metric", discover=("ambiscope.core.metrics",))
"""Metric name -> `Metric` declaration, in report order; metadata: title,
higher_is_better, level."""
