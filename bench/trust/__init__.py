"""trust benchmarks (python -m bench list)."""
