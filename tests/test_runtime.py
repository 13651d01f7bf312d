"""Devices and precisions, each path exercised on the CPU with the device passed explicitly
(CI has no GPU: what a GPU would answer is stood in for by patching torch's queries)."""

from __future__ import annotations

import pytest
import torch

from convtune import runtime
from convtune.errors import ConvtuneError


def test_auto_is_the_gpu_when_torch_sees_one(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert runtime.resolve_device("auto") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert runtime.resolve_device("auto") == torch.device("cuda")
    assert runtime.resolve_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize("setting, count, match", [
    ("cuda", 0, r"--device cuda: torch sees no CUDA GPU \(torch .*\); use --device cpu or auto"),
    ("cuda:1", 1, r"--device cuda:1: there is only 1 CUDA GPU \(cuda:0 to cuda:0\)"),
    ("gpu", 0, "device must be auto, cpu, cuda, cuda:N or mps, not 'gpu'"),
])
def test_a_missing_device_is_one_line(monkeypatch, setting, count, match):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    with pytest.raises(ConvtuneError, match=match):
        runtime.resolve_device(setting)


def test_mps_where_there_is_none_is_one_line(monkeypatch):
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(ConvtuneError, match="torch sees no Apple MPS device"):
        runtime.resolve_device("mps")


def test_auto_precision_follows_the_device(monkeypatch):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    monkeypatch.setattr(runtime, "cpu_has_bf16", lambda: True)
    assert runtime.resolve_precision("auto", cpu) == "bf16"
    monkeypatch.setattr(runtime, "cpu_has_bf16", lambda: False)
    assert runtime.resolve_precision("auto", cpu) == "fp32"  # CPU fp16 is emulated: slower than fp32
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    assert runtime.resolve_precision("auto", cuda) == "bf16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: False)
    assert runtime.resolve_precision("auto", cuda) == "fp16"  # e.g. a V100 or T4
    assert runtime.resolve_precision("fp32", cuda) == "fp32"
    with pytest.raises(ConvtuneError, match="precision must be one of auto, fp32, bf16, fp16, not 'half'"):
        runtime.resolve_precision("half", cpu)


@pytest.mark.parametrize("precision, dtype", [("fp32", torch.float32), ("bf16", torch.bfloat16),
                                              ("fp16", torch.float16)])
def test_autocast_runs_matrix_products_in_the_precision(precision, dtype):
    a = torch.randn(4, 4)
    with runtime.autocast(precision, "cpu"):
        assert (a @ a).dtype == dtype


def test_only_fp16_scales_the_loss():
    cpu = torch.device("cpu")
    assert runtime.grad_scaler("fp16", cpu).is_enabled()
    assert not runtime.grad_scaler("bf16", cpu).is_enabled() and not runtime.grad_scaler("fp32", cpu).is_enabled()


def test_batches_go_to_the_device_they_are_asked_for():
    batch = [torch.ones(2, 3, dtype=torch.long), torch.zeros(2, 3, dtype=torch.long)]
    assert all(a is b for a, b in zip(runtime.host_to_device(batch, torch.device("cpu")), batch))  # no copy
    moved = runtime.host_to_device(batch, torch.device("meta"))  # another device: a real copy
    assert all(t.device.type == "meta" and t.shape == (2, 3) for t in moved)


def test_each_local_rank_gets_its_share_of_the_cores(monkeypatch):
    monkeypatch.setattr(runtime, "usable_cores", lambda: 16)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert runtime.threads_per_process() == 16
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    assert runtime.threads_per_process() == 4
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "32")
    assert runtime.threads_per_process() == 1


def test_fp16_trains_on_the_cpu_with_a_loss_scaler(tiny_encoder):
    from convtune.estimators.transformer import Classifier

    from .conftest import toy_texts

    texts, labels = toy_texts(120)
    clf = Classifier(encoder=str(tiny_encoder), epochs=2, max_length=16, lr=3e-3, head_lr=1e-2, device="cpu",
                     precision="fp16", head_config={"num_filters": 8}).fit(texts, labels)
    assert clf.result_.precision == "fp16" and clf.manifest_["training"]["precision"] == "fp16"
    assert next(clf.model_.parameters()).dtype == torch.float32  # autocast: the weights stay fp32
    assert clf.predict_proba(texts[:5]).shape == (5, 2)


def test_a_gpu_that_is_not_there_is_one_line_everywhere(tiny_encoder, toy_csv, tmp_path, capsys, monkeypatch):
    from convtune.cli import main
    from convtune.estimators.registry import load
    from convtune.estimators.tfidf import TfidfClassifier

    from .conftest import toy_texts

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    rc = main(["train", "--data", str(toy_csv), "--encoder", str(tiny_encoder), "--device", "cuda",
               "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and err[-1].startswith("error: --device cuda: torch sees no CUDA GPU")
    assert not (tmp_path / "run").exists()
    texts, labels = toy_texts(60)
    TfidfClassifier().fit(texts, labels).save(tmp_path / "tfidf")
    with pytest.raises(ConvtuneError, match="a tfidf model runs on the CPU only, not on --device cuda"):
        load(tmp_path / "tfidf", device="cuda")
    assert load(tmp_path / "tfidf", device="cpu").predict(texts[:2])


def test_threads_follow_the_command_line_then_the_environment(monkeypatch):
    import torch

    from convtune import runtime

    monkeypatch.setattr(runtime, "usable_cores", lambda: 6)
    for name in ("CONVTUNE_THREADS", "OMP_NUM_THREADS", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    assert runtime.threads_per_process() == 6
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the user's setting is kept
    assert runtime.threads_per_process() == 1
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")  # under torchrun: its share of the cores
    assert runtime.threads_per_process() == 3
    monkeypatch.setenv("CONVTUNE_THREADS", "2")
    assert runtime.threads_per_process() == 2
    before = torch.get_num_threads()
    try:
        assert runtime.claim_threads(1) == 1 and torch.get_num_threads() == 1  # --threads N beats them all
    finally:
        monkeypatch.setattr(runtime, "_claimed", None)
        torch.set_num_threads(before)


def test_the_python_api_keeps_the_users_torch_threads(tiny_encoder, monkeypatch):
    import torch

    from convtune import Classifier, runtime

    from .conftest import toy_texts

    monkeypatch.setattr(runtime, "usable_cores", lambda: 3)
    monkeypatch.setattr(runtime, "_claimed", None)
    monkeypatch.delenv("CONVTUNE_THREADS", raising=False)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        texts, labels = toy_texts(40)
        Classifier(encoder=str(tiny_encoder), epochs=1, max_length=16, precision="fp32",
                   head_config={"num_filters": 4}).fit(texts, labels).predict(texts[:3])
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_every_computing_verb_takes_threads(capsys):
    from convtune.cli.options import COMPUTING_VERBS, parser

    p = parser()
    for verb in COMPUTING_VERBS:
        with pytest.raises(SystemExit):
            p.parse_args([verb, "--help"])
        assert "--threads N" in capsys.readouterr().out, verb
    with pytest.raises(SystemExit) as e:
        p.parse_args(["predict", "m", "x", "--threads", "0"])
    assert e.value.code == 2
