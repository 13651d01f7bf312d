"""Tests of convtune.experiments."""
