"""argparse types for ranged values: a bad one gets argparse's usage line and what is wanted."""

from __future__ import annotations

import argparse


def whole_number_arg(low: int, high: int | None = None, wants: str = ""):
    """An argparse type for whole numbers in [low, high]; argparse prints the usage and `wants`."""
    def parse(s: str) -> int:
        if not s.strip().isdigit() or int(s) < low or (high is not None and int(s) > high):
            raise argparse.ArgumentTypeError(f"wants {wants}, not {s!r}")
        return int(s)
    return parse


positive_int_arg = whole_number_arg(1, wants="a whole number >= 1")
train_limit_arg = whole_number_arg(2, wants="at least 2 texts")  # bench children used to die on 1
port_arg = whole_number_arg(1, 65535, wants="a port number from 1 to 65535")  # 99999: a traceback from bind
seed_arg = whole_number_arg(0, 2**32 - 1, wants="a whole number from 0 to 4294967295")  # numpy's seed range


def wait_ms_arg(s: str) -> float:
    try:
        value = float(s)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 10_000:  # also refuses nan; inf made requests wait forever
        raise argparse.ArgumentTypeError(f"wants milliseconds from 0 to 10000, not {s!r}")
    return value
