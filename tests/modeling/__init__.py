"""Tests of convtune.modeling."""
