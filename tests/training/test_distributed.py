"""Many ranks learn what one process learns: one DDP step on 2 gloo ranks with batch B, and
gradient accumulation 2 with batch B, leave the weights of one process with batch 2B."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

WORKER = Path(__file__).with_name("ddp_worker.py")


@pytest.fixture(scope="module")
def still_encoder(tiny_encoder, tmp_path_factory) -> Path:
    """The tiny BERT without dropout, so that runs differ only in how their batches were cut."""
    from transformers import BertModel, BertTokenizer

    d = tmp_path_factory.mktemp("still-bert")
    BertModel.from_pretrained(tiny_encoder, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                              add_pooling_layer=False).save_pretrained(d)
    BertTokenizer.from_pretrained(tiny_encoder).save_pretrained(d)
    return d


def _run(out: Path, encoder: Path, runs: list[str], nproc: int = 1) -> dict[str, list[dict]]:
    """{run: the worker's weights (and dev probabilities) of each rank}."""
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc),
                 "--master-addr", "127.0.0.1", "--master-port", str(_free_port())] if nproc > 1 else [sys.executable])
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE")}
    proc = subprocess.run(launcher + [str(WORKER), str(encoder), str(out), *runs], capture_output=True, text=True,
                          timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {run: [load_file(f"{out}-{run.replace(':', '_')}-rank{r}.safetensors") for r in range(nproc)]
            for run in runs}


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a)


def test_two_ranks_and_accumulation_match_one_process_with_twice_the_batch(still_encoder, tmp_path):
    # 32 texts, batch 16 x 2 ranks (or x 2 micro-batches) = one step of 32, as one process with batch 32;
    # frozen mode trains the head on cached token states (rank 0 fills the cache, rank 1 reads it);
    # lora trains the adapter and the head through DDP's wrapper around the peft model.
    modes = ("finetune", "frozen", "lora")
    alone = _run(tmp_path / "one", still_encoder, [f"{m}:{b}:{k}" for m in modes for b, k in ((32, 1), (16, 2), (16, 1))])
    ddp = _run(tmp_path / "ddp", still_encoder, [f"{m}:16:1" for m in modes], nproc=2)
    for m in modes:
        one, accum, half = (alone[f"{m}:{b}:{k}"][0] for b, k in ((32, 1), (16, 2), (16, 1)))
        ranks = ddp[f"{m}:16:1"]
        assert _max_diff(ranks[0], ranks[1]) == 0.0        # the ranks stay identical, dev scores too
        assert _max_diff(ranks[0], one) < 1e-5
        assert _max_diff(accum, one) < 1e-5
        assert _max_diff(half, one) > 1e-3                 # two steps of 16: so the checks above could fail
    start = load_file(str(still_encoder / "model.safetensors"))
    trained = alone["finetune:32:1"][0]
    moved = max(float((trained[f"encoder.{k}"] - v).abs().max()) for k, v in start.items() if f"encoder.{k}" in trained)
    assert moved > 1e-4  # fine-tuning moved the encoder: the comparison covers its weights
    assert torch.isfinite(trained["dev_probs"]).all()
    lora = alone["lora:32:1"][0]
    assert any("lora_" in k for k in lora)
    assert max(float(lora[k].abs().max()) for k in lora if "lora_B" in k) > 1e-4  # B starts at 0: it trained
