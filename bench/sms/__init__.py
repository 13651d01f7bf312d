"""sms benchmarks (python -m bench list)."""
