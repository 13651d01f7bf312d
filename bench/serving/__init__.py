"""serving benchmarks (python -m bench list)."""
