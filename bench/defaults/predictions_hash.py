"""Did a change move any number? Train three small models on SMS spam (fine-tune with bf16
auto; frozen + EMA in fp32; frozen for 10 epochs with the token-state cache) and print a hash of
each one's test probabilities. Run it from two checkouts and compare the lines, e.g.

    PYTHONPATH=/tmp/old/src .venv/bin/python -m bench.defaults.predictions_hash   # another commit's worktree
    .venv/bin/python -m bench.defaults.predictions_hash                           # this one
"""
import hashlib
import tempfile

from convtune import Classifier

try:
    from convtune.data.builtin import load_splits
except ImportError:
    from convtune.datasets import load_splits
from dataclasses import fields

from convtune.config import RuntimeConfig

# fp32 is spelled precision="fp32" and bf16="off" before it.
FP32 = {"precision": "fp32"} if "precision" in {f.name for f in fields(RuntimeConfig)} else {"bf16": "off"}
s = load_splits("sms_spam", seed=42)
tr, te = s.train, s.test
n = 384
out = []
for kw in ({"mode": "finetune", "epochs": 1}, {"mode": "frozen", "epochs": 2, "ema": 0.9, "cache": "off", **FP32},
           # 12 steps x 10 epochs: 0.1 * 12 * 10 rounds up to 13 warm-up steps, 0.1 * 120 to 12
           {"mode": "frozen", "epochs": 10, "patience": 10, "batch_size": 32, "cache": tempfile.mkdtemp()}):
    clf = Classifier(**({"max_length": 32, "batch_size": 16} | kw)).fit(tr.texts[:n], tr.labels[:n], s.dev.texts[:100], s.dev.labels[:100])
    p = clf.predict_proba(te.texts[:200])
    out.append(hashlib.sha256(p.tobytes()).hexdigest()[:16])
print(*out)
