"""Metrics and plots, including Chinese labels."""

from __future__ import annotations

import importlib.util
import warnings

import pytest

from convtune.metrics import compute_metrics, plot_confusion


@pytest.mark.skipif(importlib.util.find_spec("noto_cjk_sans_otc") is None, reason="noto-cjk-sans-otc not installed")
def test_chinese_labels_render_without_missing_glyphs(tmp_path):
    labels = ["体育", "财经", "娱乐"]
    m = compute_metrics(["体育", "财经", "娱乐", "体育"], ["体育", "财经", "体育", "体育"], labels)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plot_confusion(m["confusion_matrix"], labels, tmp_path / "cm.png", "测试集")
    assert (tmp_path / "cm.png").stat().st_size > 1000
    assert not [w for w in caught if "missing from font" in str(w.message)], [str(w.message) for w in caught]
