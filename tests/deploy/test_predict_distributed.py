"""`convtune predict --nproc 2`: the ranks share the chunks and rank 0 merges them, byte for
byte what one process writes; an interrupted run resumes."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ..conftest import toy_texts


@pytest.fixture(scope="module")
def saved_model(tiny_encoder, tmp_path_factory) -> Path:
    from convtune.estimators.transformer import Classifier

    out = tmp_path_factory.mktemp("pd") / "model"
    texts, labels = toy_texts(200)
    Classifier(encoder=str(tiny_encoder), epochs=1, max_length=16, head_config={"num_filters": 8}).fit(
        texts, labels).save(out)
    return out


def _rows(path: Path, n: int) -> Path:
    texts, _ = toy_texts(n, seed=7)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text"])
        w.writerows([t] for t in texts)
    return path


def _predict(model: Path, src: Path, out: Path, *extra: str, **popen) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    return subprocess.Popen([sys.executable, "-m", "convtune", "predict", str(model), "--input", str(src),
                             "--output", str(out), *extra], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True, **popen)


def _finish(proc: subprocess.Popen) -> str:
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, [line for line in err.splitlines() if "error" in line.lower()][:5]
    return err


def _identical(saved_model: Path, tmp_path: Path, n: int, suffix: str) -> None:
    src = _rows(tmp_path / "in.csv", n)
    one, two = tmp_path / f"one{suffix}", tmp_path / f"two{suffix}"
    _finish(_predict(saved_model, src, one))
    err = _finish(_predict(saved_model, src, two, "--nproc", "2"))
    assert "(2 processes)" in err
    assert one.read_bytes() == two.read_bytes()
    assert sum(1 for _ in one.open()) >= n  # every row is there (CSV: + header)
    assert not [p.name for p in tmp_path.iterdir() if ".partial" in p.name]  # nothing left behind


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_two_ranks_write_what_one_process_writes(saved_model, tmp_path, suffix):
    _identical(saved_model, tmp_path, 12_000, suffix)  # 3 chunks of 4,096: rank 0 takes two


@pytest.mark.slow
def test_100k_rows_on_two_ranks_are_byte_identical(saved_model, tmp_path):
    _identical(saved_model, tmp_path, 100_000, ".jsonl")


def test_an_interrupted_distributed_run_resumes(saved_model, tmp_path):
    src = _rows(tmp_path / "in.csv", 40_000)  # 10 chunks: 5 a rank
    one, two = tmp_path / "one.jsonl", tmp_path / "two.jsonl"
    _finish(_predict(saved_model, src, one))
    proc = _predict(saved_model, src, two, "--nproc", "2")
    marker = tmp_path / ".two.jsonl.partial-1of2.json"
    deadline = time.monotonic() + 120
    while not marker.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)  # rank 1 has finished its first chunk: stop everything
    if proc.poll() is not None:
        pytest.skip("the run finished before it could be interrupted")
    # torchrun's workers have sessions of their own: kill every process of this run, by its output path
    subprocess.run(["pkill", "-9", "-f", str(two)], check=False)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(0.5)
    assert not two.exists()
    err = _finish(_predict(saved_model, src, two, "--nproc", "2"))
    assert one.read_bytes() == two.read_bytes()
    assert "(2 processes)" in err
