"""Benchmarks, run by hand (see README). They print tables; nothing here is a test."""
