"""Tests of convtune.training."""
