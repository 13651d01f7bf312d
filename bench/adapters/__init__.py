"""adapters benchmarks (python -m bench list)."""
