#!/bin/bash
# Fine-tuning default selection: three candidates on five sets, seed 42, in
# bench/defaults_finetune.jsonl (resumable; see bench/defaults_select.sh).
# Table: python bench/defaults_report.py bench/defaults_finetune.jsonl bench/defaults_baseline.jsonl
cd "$(dirname "$0")/.."
exec bash bench/defaults_select.sh finetune bench/defaults_finetune.jsonl \
  "--epochs 5" "--epochs 3" "--epochs 6 --lr 6e-5 --head-lr 5e-4 --dropout 0"
