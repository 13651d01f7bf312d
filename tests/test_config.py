"""The configs: hyper-parameters apart from runtime settings, checked as they are made."""

import pytest

from convtune.config import RuntimeConfig, TrainConfig, split_options
from convtune.errors import ConvtuneError


def test_options_split_into_hyper_parameters_and_runtime():
    train, runtime = split_options({"epochs": 3, "precision": "fp32", "cache": "/tmp/c", "seed": 1})
    assert train == {"epochs": 3, "seed": 1} and runtime == {"precision": "fp32", "cache": "/tmp/c"}
    with pytest.raises(TypeError, match="unknown training options: epoch"):
        split_options({"epoch": 3})


@pytest.mark.parametrize("make, match", [
    (lambda: TrainConfig(epochs=0), "epochs must be a whole number >= 1"),
    (lambda: TrainConfig(class_weight="auto"), "class_weight must be one of none, balanced"),
    (lambda: RuntimeConfig(precision="yes"), "precision must be one of auto, fp32, bf16, fp16"),
    (lambda: RuntimeConfig(device="gpu"), "device must be auto, cpu, cuda, cuda:N or mps, not 'gpu'"),
    (lambda: RuntimeConfig(device="cuda:x"), "device must be auto, cpu, cuda, cuda:N or mps"),
    (lambda: TrainConfig(grad_accum=0), "grad_accum must be a whole number >= 1"),
])
def test_bad_values_are_one_line(make, match):
    with pytest.raises(ConvtuneError, match=match):
        make()
