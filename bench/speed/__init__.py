"""speed benchmarks (python -m bench list)."""
