"""Benchmarks: ``python -m tests.bench.<name>``; figures go to docs/benchmarks/."""
