"""--track tensorboard | mlflow | wandb: what each wrote, read back with the library's own reader,
and no connection to anything but this machine."""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path

import pytest

from convtune.cli import main

FAST = ["--max-length", "16", "--precision", "fp32", "--batch-size", "16", "--epochs", "2", "--filters", "8"]


@pytest.fixture
def offline(monkeypatch):
    """Fail (and record) any connection from this process that leaves the machine; point W&B's
    server and every proxy at a local listener that records any connection wandb-core makes."""
    attempts = []
    real_connect = socket.socket.connect

    def connect(self, address):
        host = address[0] if isinstance(address, tuple) else None
        if host is not None and host not in ("127.0.0.1", "::1", "localhost"):
            attempts.append(address)
            raise OSError(f"test: network connection to {address} refused")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.2)
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    for name in ("WANDB_BASE_URL", "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(name, url)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    stop = threading.Event()

    def accept():
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
                attempts.append(("local listener", url))
                conn.close()
            except OSError:
                pass
    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield attempts
    stop.set()
    t.join()
    listener.close()


def _train(toy_csv, tiny_encoder, out: Path, track: str) -> dict:
    assert main(["train", "--data", str(toy_csv), "--encoder", str(tiny_encoder), *FAST, "--track", track,
                 "--out", str(out)]) == 0
    return json.loads((out / "metrics.json").read_text())


def test_tensorboard_one_run_with_scalars_hparams_and_the_confusion_image(toy_csv, tiny_encoder, tmp_path, offline):
    pytest.importorskip("tensorboard", reason="pip install 'convtune[tensorboard]'")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    m = _train(toy_csv, tiny_encoder, tmp_path / "run", "tensorboard")
    logdir = tmp_path / "run" / "tensorboard"
    assert [p for p in logdir.iterdir() if p.is_dir()] == []  # one run: add_hparams would add a second
    acc = EventAccumulator(str(logdir), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    tags = acc.Tags()
    assert {"train/loss", "train/lr_encoder", "train/lr_head", "dev/macro_f1", "test/accuracy"} <= set(tags["scalars"])
    assert acc.Scalars("test/accuracy")[-1].value == pytest.approx(m["test"]["accuracy"])
    assert len(acc.Scalars("dev/macro_f1")) == 2  # one per epoch
    assert tags["images"] == ["confusion_matrix"]
    assert "hparams" in acc.PluginTagToContent("hparams") or acc.PluginTagToContent("hparams")
    assert offline == []


def test_mlflow_run_in_sqlite_with_params_metrics_image_and_model(toy_csv, tiny_encoder, tmp_path, offline):
    pytest.importorskip("mlflow", reason="pip install 'convtune[mlflow]'")
    import mlflow

    m = _train(toy_csv, tiny_encoder, tmp_path / "run", "mlflow")
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("convtune").experiment_id])
    assert run.info.run_name == "run" and run.info.status == "FINISHED"
    assert run.data.params["mode"] == "finetune" and run.data.params["head"] == "cnn"
    assert run.data.metrics["test/accuracy"] == pytest.approx(m["test"]["accuracy"])
    assert len(client.get_metric_history(run.info.run_id, "dev/macro_f1")) == 2
    assert client.get_metric_history(run.info.run_id, "train/loss")
    paths = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"confusion_matrix.png", "model"} <= paths
    assert "model/convtune.json" in {a.path for a in client.list_artifacts(run.info.run_id, "model")}
    assert offline == []


def _wandb_records(path: Path):
    """The records of a .wandb transaction log, parsed with W&B's own protobuf schema. (W&B 0.31
    ships no Python reader; the framing is LevelDB's log format after a 7-byte header.)"""
    from wandb.proto import wandb_internal_pb2 as pb

    data, pos, block, pending = path.read_bytes(), 7, 32768, b""
    assert data[:4] == b":W&B"
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        length, kind = int.from_bytes(data[pos + 4:pos + 6], "little"), data[pos + 6]
        chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        if kind == 0:
            break
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind in (1, 4):
            record = pb.Record()
            record.ParseFromString(pending)
            yield record


def test_wandb_offline_run_records_history_summary_and_config(toy_csv, tiny_encoder, tmp_path, offline):
    pytest.importorskip("wandb", reason="pip install 'convtune[wandb]'")
    m = _train(toy_csv, tiny_encoder, tmp_path / "run", "wandb")
    (log,) = (tmp_path / "run" / "wandb").glob("offline-run-*/run-*.wandb")
    history, summary, config = [], {}, {}
    for r in _wandb_records(log):
        kind = r.WhichOneof("record_type")
        if kind == "history":
            history.append({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in r.history.item})
        elif kind == "summary":
            summary |= {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in r.summary.update}
        elif kind == "config":
            config |= {i.key: json.loads(i.value_json) for i in r.config.update}
    assert any("train/loss" in h for h in history) and sum("dev/macro_f1" in h for h in history) == 2
    assert summary["test/accuracy"] == pytest.approx(m["test"]["accuracy"])
    assert config.get("mode") == "finetune"
    assert offline == []


def test_a_missing_tracking_library_is_one_line(toy_csv, tiny_encoder, tmp_path, capsys, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a))
    assert main(["train", "--data", str(toy_csv), "--encoder", str(tiny_encoder), "--track", "mlflow",
                 "--out", str(tmp_path / "run")]) == 2
    assert "pip install 'convtune[mlflow]'" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_compare_and_search_track_every_run(toy_csv, tiny_encoder, tmp_path, offline):
    pytest.importorskip("tensorboard", reason="pip install 'convtune[tensorboard]'")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    assert main(["compare", "--data", str(toy_csv), "--heads", "cnn,tfidf-nb", "--modes", "frozen", "--seeds", "1",
                 "--encoder", str(tiny_encoder), "--frozen-epochs", "2", "--max-length", "16", "--track", "tensorboard",
                 "--out", str(tmp_path / "cmp")]) == 0
    cells = sorted(p.name for p in (tmp_path / "cmp" / "tracking").iterdir())
    assert cells == ["cnn_frozen-seed42", "tfidf-nb-seed42"]
    acc = EventAccumulator(str(tmp_path / "cmp" / "tracking" / "cnn_frozen-seed42" / "tensorboard"))
    acc.Reload()
    assert len(acc.Scalars("dev/macro_f1")) == 2 and acc.Scalars("test/accuracy")
    assert main(["search", "--data", str(toy_csv), "--encoder", str(tiny_encoder), *FAST, "--trials", "2",
                 "--track", "tensorboard", "--out", str(tmp_path / "s")]) == 0
    assert sorted(p.name for p in (tmp_path / "s" / "tracking").iterdir()) == ["trial-0000", "trial-0001"]
    assert offline == []
