"""Tests of convtune.estimators."""
