"""Test-time scaling: candidate generation runs and the aggregation strategies."""
