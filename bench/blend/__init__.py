"""blend benchmarks (python -m bench list)."""
