"""What only a GPU can show (marked `gpu`, run by bench/gpu_check.sh; skipped without CUDA):
training in each precision on the GPU, and the saved model predicting the same on the CPU."""

from __future__ import annotations

import pytest
import torch

from .conftest import toy_texts

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="torch sees no CUDA GPU")]


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_trains_on_the_gpu_and_predicts_the_same_on_the_cpu(tiny_encoder, tmp_path, precision):
    from convtune import load
    from convtune.estimators.transformer import Classifier

    texts, labels = toy_texts(300)
    clf = Classifier(encoder=str(tiny_encoder), epochs=3, max_length=16, lr=3e-3, head_lr=1e-2,
                     device="cuda", precision=precision).fit(texts, labels)
    assert clf.result_.precision == precision
    assert next(clf.model_.parameters()).device.type == "cuda"
    clf.save(tmp_path / "m")
    gpu = load(tmp_path / "m", device="cuda", precision="fp32").predict_proba(texts[:50])
    cpu = load(tmp_path / "m", device="cpu", precision="fp32").predict_proba(texts[:50])
    assert abs(gpu - cpu).max() < 1e-4
