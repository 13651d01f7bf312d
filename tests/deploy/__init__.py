"""Tests of convtune.deploy."""
