#!/bin/bash
# Fine-tuning default selection: three candidates on five sets, seed 42, in
# bench/defaults/finetune.jsonl (resumable; see bench/defaults/select.sh).
# Table: python -m bench.defaults.report bench/defaults/finetune.jsonl bench/defaults/baseline.jsonl
cd "$(dirname "$0")/../.."
exec bash bench/defaults/select.sh finetune bench/defaults/finetune.jsonl \
  "--epochs 5" "--epochs 3" "--epochs 6 --lr 6e-5 --head-lr 5e-4 --dropout 0"
