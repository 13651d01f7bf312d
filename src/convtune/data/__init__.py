"""Texts and labels: file readers, splits, the label space, built-in data sets, batching."""
