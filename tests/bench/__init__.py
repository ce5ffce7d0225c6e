"""Benchmarks: run as scripts (python -m tests.bench.<name>), never as timed tests."""
