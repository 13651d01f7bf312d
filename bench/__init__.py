"""convtune's benchmarks, grouped by what they measure; `python -m bench list` shows them."""
