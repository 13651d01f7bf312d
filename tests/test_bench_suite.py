"""The repository's benchmarks (bench/): the shared helpers, the entry point and the comparison
with Hugging Face's Trainer, on toy data with the tiny encoder."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(not (ROOT / "bench" / "__main__.py").is_file(), reason="needs the repository's bench/")


def test_a_child_reports_its_own_peak_memory_not_the_parents():
    from bench.common import run_child

    # Measured from a small parent (this test process is large, and Linux counts a forked
    # child's memory before its exec): 300 MB touched in one child, nothing in the other.
    code = ("import json, sys; from bench.common import run_child; "
            "big = [sys.executable, '-c', 'b = bytearray(300 * 2**20); b[::4096] = bytes(len(b[::4096]))']; "
            "print(json.dumps([run_child(big)['peak_rss_mb'], run_child([sys.executable, '-c', 'pass'])['peak_rss_mb']]))")
    big, small = json.loads(subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                                           text=True, check=True).stdout)
    assert big > small + 250 and small < 100
    assert run_child([sys.executable, "-c", "print('hi')"], capture=True)["stdout"] == "hi\n"
    with pytest.raises(SystemExit, match="failed with exit 3"):
        run_child([sys.executable, "-c", "raise SystemExit(3)"], quiet=True)


def test_mean_sd_cells_and_notes(tmp_path):
    from bench.common import notes, pm

    assert pm([0.5, 0.7]) == "60.00 ± 14.14"  # sample sd
    assert pm([3.0], 1.0, 0) == "3 ± 0"
    assert notes(tmp_path / "absent.md") == ""


def test_the_entry_point_lists_every_script_and_refuses_unknown_ones():
    out = subprocess.run([sys.executable, "-m", "bench", "list"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0
    listed = {line.split()[0] for line in out.stdout.splitlines() if line.startswith("  ")}
    scripts = {f"{p.parent.name}.{p.stem}" for p in (ROOT / "bench").glob("*/*.py") if p.stem != "__init__"}
    assert listed == scripts
    bad = subprocess.run([sys.executable, "-m", "bench", "run", "no.such"], cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode == 2 and "no benchmark named 'no.such'" in bad.stderr and "Traceback" not in bad.stderr


def test_the_peer_classifier_init_follows_the_seed_not_earlier_rng_use(tiny_encoder):
    import torch

    from bench.speed.vs_trainer import peer_model

    first = peer_model(tiny_encoder, ["ham", "spam"], seed=3).classifier.weight
    torch.rand(1000)  # what an earlier job in the same process would have drawn
    again = peer_model(tiny_encoder, ["ham", "spam"], seed=3).classifier.weight
    other = peer_model(tiny_encoder, ["ham", "spam"], seed=4).classifier.weight
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


@pytest.mark.skipif(importlib.util.find_spec("accelerate") is None, reason="the peer (Trainer) needs accelerate")
def test_the_trainer_comparison_runs_both_sides(tiny_encoder, toy_csv, tmp_path, monkeypatch):
    from bench.speed.vs_trainer import run

    monkeypatch.setenv("CONVTUNE_CACHE", str(tmp_path / "cache"))
    res = run(tmp_path / "vs", data=str(toy_csv), encoder=str(tiny_encoder), epochs=1, frozen_epochs=2,
              batch_size=16, max_length=16, log=lambda m: None)
    assert 100 < res["peer_train"]["peak_rss_mb"] < 16_000 and 100 < res["pipeline_predict"]["peak_rss_mb"] < 16_000
    assert res["pipeline_predict"]["texts"] == res["convtune_predict"]["texts"] == 20
    assert {"finetune_samples_per_s_vs_peer", "predict_texts_per_s_vs_pipeline",
            "ddp_samples_per_s_vs_one_process"} <= set(res["ratios"])
    assert res["flops"]["peer_train"] > 2 * res["flops"]["peer_predict"] > 0
    assert all(0 < m["mfu"] < 1 for m in res["mfu"].values()) and len(res["mfu"]) == 4
    md = (tmp_path / "vs.md").read_text()
    assert "Trainer" in md and "transformers.pipeline" in md and "MFU" in md
    assert json.loads((tmp_path / "vs.json").read_text())["config"]["pipeline_batch_size"] == 32
