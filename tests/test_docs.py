"""Every `convtune ...` command in the README and docs/ parses with today's CLI: a renamed or
removed option fails here, not for the reader who copies the command."""

import re
import shlex
from pathlib import Path

import pytest

from convtune.cli.options import parser

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _commands(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    blocks = re.findall(r"```[^\n]*\n(.*?)```", text, flags=re.DOTALL)
    lines = [line for block in blocks for line in block.splitlines()]
    spans = re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", text, flags=re.DOTALL))
    found = []
    for line, inline in [(line, False) for line in lines] + [(span, True) for span in spans]:
        for part in line.split("&&"):
            part = part.split(" #")[0].strip().removeprefix(".venv/bin/")
            words = part.split()
            # Synopses ([optional], a|b choices, UPPER-CASE placeholders), pipes and elisions are
            # not commands to copy; nor is a verb named in a sentence (`convtune predict`).
            if (not part.startswith("convtune ") or re.search(r"[\[|…<]|\.\.\.", part)
                    or (inline and (not any(w.startswith("--") for w in words)
                                    or any(re.fullmatch(r"[A-Z][A-Z0-9_]*", w) for w in words)))):
                continue
            found.append(part)
    return found


CASES = [(p.name, c) for p in DOCS for c in _commands(p)]


def test_the_docs_hold_commands():
    assert len(CASES) > 30 and {name for name, _ in CASES} >= {"README.md", "training.md", "deployment.md"}


@pytest.mark.parametrize("doc, command", CASES)
def test_documented_command_parses(doc, command):
    try:
        parser().parse_args(shlex.split(command)[1:])
    except SystemExit as e:
        if e.code == 0:  # --help
            return
        pytest.fail(f"{doc}: `{command}` does not parse (exit {e.code})")


# The product speaks of itself, not of how the work was organised: no issue numbers, "item N",
# references to the tracker's texts, or work-log ordinals (a session counted in words), in README, docs/, bench/,
# src/ or tests/.
PROCESS_WORDS = re.compile(r"\bissues?,? ?#?\d+|\(issue\b|\bthe issue\b|\bissue's\b|\bitem \d+\b"
                           r"|\b\w+(?:th|st|nd|rd) session\b|\bthis session\b", re.IGNORECASE)
CHECKED = ("README.md", "docs", "bench", "src", "tests")


def _checked_files():
    for name in CHECKED:
        path = ROOT / name
        files = [path] if path.is_file() else sorted(path.rglob("*"))
        yield from (p for p in files if p.suffix in (".py", ".html", ".toml", ".sh", ".md") and p.is_file()
                    and "egg-info" not in str(p))


def test_no_process_words_anywhere():
    found = [f"{p.relative_to(ROOT)}:{n}: {line.strip()[:80]}" for p in _checked_files()
             for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
             if PROCESS_WORDS.search(line) and "PROCESS_WORDS" not in line]
    assert not found, "\n".join(found)
