"""Benchmarks of the feature platform: `python -m bench` measures and prints, it never asserts."""
