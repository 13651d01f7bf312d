#!/bin/bash
# A mode's default-recipe selection grid: every candidate on five sets, seed
# 42, one JSON line per cell in OUT; cells already there are skipped, so the script can be
# stopped and rerun. Sets go cheapest first, each set's candidates together.
#   bash bench/defaults/select.sh MODE OUT "CANDIDATE OPTIONS" ["CANDIDATE OPTIONS" ...]
#   bash bench/defaults/select.sh lora bench/defaults/lora.jsonl "--epochs 5" "--epochs 5 --lora-r 16 --lora-alpha 32"
# Table: python -m bench.defaults.report OUT. Run nothing else meanwhile (train seconds are
# recorded; the choice is by dev macro-F1). SETS="trec sst2" narrows the sets.
cd "$(dirname "$0")/../.."
MODE=$1; OUT=$2; shift 2
for d in ${SETS:-trec sms_spam sst2 ag_news chnsenticorp_htl}; do
  for extra in "$@"; do
    if [ -f "$OUT" ] && grep -F "\"data\": \"$d\"" "$OUT" | grep -F "\"mode\": \"$MODE\"" | grep -qF "\"extra\": \"$extra\""; then
      continue
    fi
    .venv/bin/python -m bench.adapters.run "$d" --mode "$MODE" --seeds 42 --extra "$extra" --out "$OUT" || echo "FAILED $d $extra"
  done
done
