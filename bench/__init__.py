"""Benchmarks: each runnable with `python -m bench.<name>`, printing `name: value unit` lines."""
