"""How much cheaper can a head epoch on cached states be than the encoder pass?

Counts floating-point operations with `torch.utils.flop_counter` on real SST-2 batches:
the frozen encoder's forward pass against one training step of a head (forward + backward;
cached states need no gradient). The ratio bounds what a warm-cache epoch can gain over the
cold first epoch, which runs both: (encoder + head) / head, if both ran equally efficiently.

    python -m bench.speed.head_flops --out bench/speed/head_flops
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from convtune.data.batching import collate, tokenize
from convtune.data.builtin import load_splits
from convtune.modeling.encoders import resolve_encoder
from convtune.modeling.heads import build_head
from convtune.modeling.model import ModelConfig, build_model

HEADS = {  # name -> (kind, config)
    "cnn (default: widths 2/3/4 x 128)": ("cnn", {}),
    "cnn, widths 3/4/5 x 100 (Kim 2014)": ("cnn", {"kernel_sizes": [3, 4, 5], "num_filters": 100}),
    "cnn, widths 2/3/4 x 64": ("cnn", {"num_filters": 64}),
    "linear ([CLS])": ("linear", {}),
}


def count(fn) -> int:
    with FlopCounterMode(display=False) as fc:
        fn()
    return fc.get_total_flops()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="sst2")
    p.add_argument("--encoder", default="minilm-l6")
    p.add_argument("--texts", type=int, default=512)
    p.add_argument("--out", default="bench/speed/head_flops")
    a = p.parse_args(argv)
    splits = load_splits(a.data)
    labels = sorted(set(splits.train.labels))
    cfg = ModelConfig(encoder=a.encoder, labels=labels, head="cnn", mode="frozen", max_length=128)
    model, tok, _ = build_model(cfg, resolve_encoder(a.encoder))
    ids, mask = collate(tokenize(tok, splits.train.texts[:a.texts], 128).ids, tok.pad_token_id)
    with FlopCounterMode(display=False) as fc, torch.no_grad():  # one encoder pass: states and its count
        states = model.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
    enc = fc.get_total_flops()
    y = torch.zeros(len(ids), dtype=torch.long)
    rows = []
    for name, (kind, conf) in HEADS.items():
        head = build_head(kind, states.size(-1), len(labels), conf).train()
        flops = count(lambda head=head: F.cross_entropy(head(states, mask), y).backward())
        rows.append({"head": name, "head_train_flops": flops, "encoder_over_head": enc / flops,
                     "ceiling": (enc + flops) / flops})
    lines = ["| head | encoder forward / head train step (FLOPs) | best possible cold-epoch / warm-epoch |",
             "|---|---|---|"]
    lines += [f"| {r['head']} | {r['encoder_over_head']:.1f} | {r['ceiling']:.1f}x |" for r in rows]
    md = (f"# Head vs encoder FLOPs ({a.encoder}, {len(ids)} {a.data} texts)\n\n"
          f"`python {' '.join(sys.argv)}`\n\n" + "\n".join(lines) + "\n")
    out = Path(a.out)
    out.with_suffix(".json").write_text(json.dumps({"encoder_forward_flops": enc, "rows": rows}, indent=1))
    out.with_suffix(".md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
