"""What the benchmarks share: a child process measured on its own (wall time, peak RSS, what it
printed), mean ± sd cells, JSON lines, and the hand-written notes a results page includes.

Imports nothing heavy at module level: Linux counts the memory a child had when it was forked
(before its exec) into the child's ru_maxrss, so a parent that measures children stays small."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path


def run_child(cmd: list[str], capture: bool = False, quiet: bool = False, stop=None) -> dict:
    """Run `cmd` in a child process to its end: wall seconds, the child's own peak RSS in MB
    (ru_maxrss from os.wait4: neither the parent's nor an earlier child's) and, with `capture`,
    its stdout. `stop(proc)`, when given, is called once the child has started and must make it
    exit (a server: send a request, then SIGTERM); its return value is kept as "answer".
    A child that fails ends the benchmark with its command line."""
    start = time.perf_counter()
    out = subprocess.PIPE if capture else (subprocess.DEVNULL if quiet or stop else None)
    err = subprocess.DEVNULL if quiet or capture or stop else None
    proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True)
    answer = stop(proc) if stop else None
    printed = proc.stdout.read() if capture else None
    _, status, usage = os.wait4(proc.pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code != 0 and stop is None:
        raise SystemExit(f"{' '.join(map(str, cmd))} failed with exit {code}")
    return {"seconds": round(time.perf_counter() - start, 2), "peak_rss_mb": round(usage.ru_maxrss / 1024),
            "stdout": printed, "answer": answer}


def pm(values, scale: float = 100.0, digits: int = 2) -> str:
    """A mean ± sample-sd cell (values scaled by `scale`: fractions to percent by default)."""
    import numpy as np  # here, not above: a parent that measures its children stays small

    from convtune.metrics import mean_sd

    mean, sd = mean_sd(np.asarray(values, dtype=float) * scale)
    return f"{mean:.{digits}f} ± {sd:.{digits}f}"


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def append_row(path: Path, row: dict) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")
    print(json.dumps(row), flush=True)


def notes(path: Path) -> str:
    """A page's hand-written notes, kept in their own file and appended unchanged ("" if none)."""
    return Path(path).read_text(encoding="utf-8") if Path(path).is_file() else ""
