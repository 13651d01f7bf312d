"""memory benchmarks (python -m bench list)."""
