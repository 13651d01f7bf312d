#!/usr/bin/env bash
# The GPU check: at most 10 minutes on one CUDA GPU.
#   1. the tests marked `gpu` (they skip where torch sees no GPU);
#   2. convtune train --data sst2 (the default recipe, 3 epochs) on the GPU in each precision,
#      then the test set predicted on the GPU: samples/s, predict texts/s and accuracy per precision.
# Nothing depends on it and CI has no GPU; run it whenever a GPU machine is lent:
#   CONVTUNE_DATA=/path/to/shared/data bash bench/gpu_check.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${1:-${OUT:-/tmp/convtune-gpu-check}}
mkdir -p "$OUT"
deadline=$((SECONDS + 600))
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA GPU visible to torch')"
"$PY" -c "import torch; print('GPU:', torch.cuda.get_device_name(0), '| torch', torch.__version__)" | tee "$OUT/gpu.txt"
timeout 180 "$PY" -m pytest -m gpu -q -p no:cacheprovider tests | tail -3 | tee -a "$OUT/gpu.txt"
for precision in fp32 bf16 fp16; do
  left=$((deadline - SECONDS - 20))
  if [ "$left" -lt 60 ]; then echo "skipped $precision: the 10-minute budget is spent" | tee -a "$OUT/gpu.txt"; continue; fi
  timeout "$left" "$PY" -m convtune train --data sst2 --epochs 3 --device cuda --precision "$precision" \
      --out "$OUT/sst2-$precision" --overwrite > "$OUT/train-$precision.log" 2>&1 || { echo "train $precision failed: $(tail -1 "$OUT/train-$precision.log")" | tee -a "$OUT/gpu.txt"; continue; }
  timeout 120 "$PY" - "$OUT/sst2-$precision" "$precision" <<'PYEOF' | tee -a "$OUT/gpu.txt"
import json, sys, time
from pathlib import Path
import convtune
from convtune.data.builtin import model_splits
run, precision = Path(sys.argv[1]), sys.argv[2]
m = json.loads((run / "metrics.json").read_text())
test = model_splits(run, "sst2").test
clf = convtune.load(run, device="cuda", precision=precision)
clf.predict(test.texts[:64])
start = time.perf_counter()
clf.predict(test.texts)
rate = len(test.texts) / (time.perf_counter() - start)
samples = len(m["history"]) * m["train_size"] / m["train_seconds"]
print(f"| {precision} | {samples:.0f} samples/s | {rate:.0f} texts/s | test accuracy {m['test']['accuracy']:.4f} |")
PYEOF
done
echo "results: $OUT/gpu.txt"
