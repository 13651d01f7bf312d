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


def number_arg(low: float | None, high: float | None, wants: str | None = None):
    """An argparse type for real numbers in [low, high] (nan refused)."""
    def parse(s: str) -> float:
        try:
            value = float(s)
        except ValueError:
            value = float("nan")
        if not ((low is None or value >= low) and (high is None or value <= high)):
            raise argparse.ArgumentTypeError(f"wants {wants or f'a number from {low} to {high}'}, not {s!r}")
        return value
    return parse
