"""Progress bars: live on a terminal, and still there (one update a minute) in a log file.

tqdm's own ``disable=None`` turns bars off whenever stderr is not a terminal, which left
``nohup convtune train ... > log`` silent for the whole of a long epoch. ``TQDM_DISABLE=1``
still turns every bar off.
"""

from __future__ import annotations

import sys

from tqdm.auto import tqdm


def progress(iterable=None, *, quiet: bool = False, **kwargs) -> tqdm:
    """A tqdm bar; ``quiet`` hides it (e.g. small jobs), otherwise it shows wherever stderr goes."""
    terminal = sys.stderr.isatty()
    # Short-lived bars (leave=False: per-epoch dev passes) are only worth it on a terminal.
    if quiet or (not terminal and kwargs.get("leave") is False):
        return tqdm(iterable, disable=True, **kwargs)
    if not terminal:
        kwargs.setdefault("mininterval", 60.0)   # a log gets a line a minute, not thousands
        kwargs.setdefault("ascii", True)
    return tqdm(iterable, **kwargs)
