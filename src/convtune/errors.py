"""The one exception type users see, and the one way warnings reach them.

Every expected failure (bad input file, missing encoder, unseen label ...) raises
`ConvtuneError` with a message that fits on one line and says what to do. The CLI prints
it as `error: <message>` and exits with status 2 instead of showing a traceback.
"""

from __future__ import annotations

import re
import sys


class ConvtuneError(Exception):
    """A user-facing error: bad input, missing resource, or an impossible request."""


class TrainingDiverged(ConvtuneError):
    """The training loss became NaN or infinite (a search records the trial as failed and goes on)."""


def warn(message: str) -> None:
    """One `warning:` line on stderr (work goes on; the CLI and the Python API alike)."""
    print(f"warning: {message}", file=sys.stderr, flush=True)


# A lone UTF-16 surrogate (U+D800-U+DFFF) is valid in JSON ("\ud800") and in a Python str,
# but it is not text: it cannot be encoded as UTF-8, and the tokenizers fail on it.
_SURROGATE = re.compile("[\ud800-\udfff]")


def text_problem(text: str, empty_ok: bool = False) -> str | None:
    """Why `text` cannot be classified (empty, unless `empty_ok`, or not valid Unicode), or None."""
    if not text.strip():
        return None if empty_ok else "is empty"
    bad = _SURROGATE.search(text)
    if bad is not None:
        return (f"holds a lone surrogate U+{ord(bad.group()):04X} at character {bad.start()} "
                "(not valid Unicode text)")
    return None
