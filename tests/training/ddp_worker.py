"""Run by tests/training/test_distributed.py, under torchrun or alone: for each RUN
(mode:batch_size:grad_accum) train a tiny classifier for one epoch on 32 toy texts and write
its weights and dev probabilities to OUT-<run>-rank<R>.safetensors.

    python ddp_worker.py ENCODER_DIR OUT RUN [RUN ...]
"""

import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

from convtune import distributed
from convtune.estimators.transformer import Classifier

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from conftest import toy_texts  # noqa: E402


def train_one(encoder: str, out: str, run: str) -> None:
    mode, batch_size, grad_accum = run.split(":")
    texts, labels = toy_texts(32, seed=1)
    dev_texts, dev_labels = toy_texts(20, seed=2)
    clf = Classifier(encoder=encoder, mode=mode, epochs=1, batch_size=int(batch_size), grad_accum=int(grad_accum),
                     lr=1e-3, head_lr=1e-2, max_length=16, precision="fp32", seed=0, device="cpu",
                     head_config={"dropout": 0.0, "num_filters": 8}, lora_dropout=0.0,
                     cache=f"{out}-cache" if mode == "frozen" else "off")
    clf.fit(texts, labels, dev_texts, dev_labels)
    state = {k: v.contiguous() for k, v in clf.model_.state_dict().items()}
    state["dev_probs"] = torch.from_numpy(clf.predict_proba(dev_texts))  # collective under torchrun
    save_file(state, f"{out}-{run.replace(':', '_')}-rank{distributed.current().rank}.safetensors")


if __name__ == "__main__":
    distributed.init("cpu")
    for run in sys.argv[3:]:
        train_one(sys.argv[1], sys.argv[2], run)
    distributed.shutdown()
