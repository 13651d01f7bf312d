"""Runs, comparisons over seeds, reports, plots and the benchmark against the peers."""
