"""Tests of convtune.data."""
