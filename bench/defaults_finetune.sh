#!/bin/bash
# Fine-tuning default selection (issue 22, item 7): three candidates on five sets, seed 42,
# one JSON line per cell in bench/defaults_finetune.jsonl; cells already there are skipped, so
# the script can be stopped and rerun. Table: python bench/defaults_report.py bench/defaults_finetune.jsonl
# Run nothing else meanwhile (train seconds are recorded; the choice is by dev macro-F1).
cd "$(dirname "$0")/.."
OUT=bench/defaults_finetune.jsonl
for d in trec sms_spam sst2 ag_news chnsenticorp_htl; do
  for extra in "--epochs 5" "--epochs 3" "--epochs 6 --lr 6e-5 --head-lr 5e-4 --dropout 0"; do
    if [ -f "$OUT" ] && grep -F "\"data\": \"$d\"" "$OUT" | grep -qF "\"extra\": \"$extra\""; then
      continue
    fi
    .venv/bin/python bench/issue21.py "$d" --mode finetune --seeds 42 --extra "$extra" --out "$OUT" || echo "FAILED $d $extra"
  done
done
