"""fewshot benchmarks (python -m bench list)."""
