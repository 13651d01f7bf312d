"""Two simulated nodes on loopback (torchrun --nnodes 2, c10d rendezvous on 127.0.0.1, one
process each) train one run directory; killing one node's process makes the other stop with
one error line, and leaves no run directory that looks complete. Slow: about a minute."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _nodes(tiny_encoder: Path, data: Path, out: Path, epochs: int) -> list[subprocess.Popen]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env |= {"CONVTUNE_DIST_TIMEOUT": "60", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
           "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", "convtune-test",
           "-m", "convtune", "train", "--data", str(data), "--encoder", str(tiny_encoder), "--epochs", str(epochs),
           "--patience", str(epochs), "--max-length", "16", "--filters", "8", "--precision", "fp32", "--out", str(out)]
    procs = []
    for _ in range(2):
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                      start_new_session=True))
        time.sleep(1)  # the first one hosts the rendezvous store
    return procs


def test_two_nodes_on_loopback_train_one_run_directory(tiny_encoder, toy_csv, tmp_path):
    out = tmp_path / "run"
    procs = _nodes(tiny_encoder, toy_csv, out, epochs=2)
    results = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-1500:] for _, err in results]
    metrics = (out / "metrics.json").read_text()
    assert '"processes": 2' in metrics and (out / "convtune.json").exists()
    assert sum("saved " in stdout for stdout, _ in results) == 1  # rank 0 reports, once


def test_killing_one_node_stops_the_other_with_one_error_line(tiny_encoder, tmp_path):
    import csv

    from ..conftest import toy_texts

    texts, labels = toy_texts(2000)
    data = tmp_path / "big.csv"
    with data.open("w", newline="") as f:
        csv.writer(f).writerows([("text", "label"), *zip(texts, labels)])
    out = tmp_path / "run"
    first, second = _nodes(tiny_encoder, data, out, epochs=200)
    time.sleep(25)  # both joined and training
    assert first.poll() is None and second.poll() is None, "the run ended before the kill"
    # the node's worker runs in a session of its own (torchrun's): kill it, then its agent
    subprocess.run(["pkill", "-9", "-P", str(second.pid)], check=False)
    os.killpg(second.pid, signal.SIGKILL)
    start = time.monotonic()
    _, err = first.communicate(timeout=120)
    assert time.monotonic() - start < 90
    assert first.returncode != 0
    ours = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(ours) == 1, err[-3000:]
    assert not out.exists()  # only a hidden partial, which the next save removes
    assert not [p for p in tmp_path.iterdir() if p.is_dir() and not p.name.startswith(".")
                and (p / "convtune.json").exists()]
