"""defaults benchmarks (python -m bench list)."""
