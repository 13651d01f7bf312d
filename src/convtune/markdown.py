"""Values written into the Markdown convtune makes (model cards, compare / search / audit
reports): a label, a text or a command is shown as written and never becomes Markdown or raw
HTML, whatever it holds (backticks, `<img onerror=...>`, pipes, line breaks)."""

from __future__ import annotations

import re

_SPECIAL = re.compile(r"([\\`*_\[\]<>|&~#!])")


def text(value) -> str:
    """Plain text for a paragraph or a table cell: one line, Markdown and HTML characters escaped."""
    return _SPECIAL.sub(r"\\\1", " ".join(str(value).split()))


def code(value, in_table: bool = False) -> str:
    """An inline code span: its fence longer than any run of backticks inside, padded where the
    value starts or ends with one (CommonMark's rule); pipes escaped inside a table."""
    s = " ".join(str(value).split())
    if in_table:
        s = s.replace("|", "\\|")
    fence = "`" * (max(map(len, re.findall("`+", s)), default=0) + 1)
    pad = " " if s[:1] == "`" or s[-1:] == "`" else ""
    return f"{fence}{pad}{s}{pad}{fence}"


def block(value) -> str:
    """A fenced code block whose fence no line of the value can close."""
    s = str(value)
    fence = "`" * max(3, max(map(len, re.findall("`+", s)), default=0) + 1)
    return f"{fence}\n{s}\n{fence}"
