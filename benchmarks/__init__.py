"""Benchmarks: commands that print a table (performance is measured here, not asserted in tests)."""
