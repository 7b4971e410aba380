"""Benchmarks: run against a local Bot API, not part of the test run (see the README)."""
