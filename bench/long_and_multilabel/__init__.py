"""long_and_multilabel benchmarks (python -m bench list)."""
