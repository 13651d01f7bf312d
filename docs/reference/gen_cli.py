"""Write docs/reference/cli.md from the argument parser: every verb's `--help`, as argparse prints it.

    python docs/reference/gen_cli.py docs/reference/cli.md
"""

import argparse
import os
import sys

os.environ["COLUMNS"] = "100"  # argparse wraps help at the terminal's width: fixed, so the page is stable

from convtune.cli.options import parser  # noqa: E402


def main(out: str) -> None:
    p = parser()
    sub = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
    lines = ["# Command line", "", "Generated from the parser (`make docs`); `convtune VERB --help` prints the same.", ""]
    for verb, verb_parser in sub.choices.items():
        lines += [f"## convtune {verb}", "", "```", verb_parser.format_help().rstrip(), "```", ""]
    with open(out, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1])
