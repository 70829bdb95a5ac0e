"""Benchmarks, run by hand (see docs/benchmarks.md). They print tables; nothing here is a test."""
