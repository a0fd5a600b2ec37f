"""argparse types for the benchmarks' options: a bad value stops with argparse's one-line error
(exit 2) before anything runs."""

from __future__ import annotations

import argparse
from typing import Callable, List


def _number(kind: type, text: str, low: float, high: float | None) -> float:
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
    if value < low or (high is not None and value > high):
        span = f"at least {low:g}" if high is None else f"from {low:g} to {high:g}"
        raise argparse.ArgumentTypeError(f"{text} is out of range: must be {span}")
    return value


def integer(low: int = 1, high: int | None = None) -> Callable[[str], int]:
    """An integer in [low, high]."""
    return lambda text: int(_number(int, text, low, high))


def number(low: float = 0.0) -> Callable[[str], float]:
    """A number of at least ``low``."""
    return lambda text: float(_number(float, text, low, None))


def integers(low: int = 1) -> Callable[[str], List[int]]:
    """A comma-separated list of integers of at least ``low`` (e.g. ``16,32``)."""
    def parse(text: str) -> List[int]:
        values = [int(_number(int, v.strip(), low, None)) for v in text.split(",") if v.strip()]
        if not values:
            raise argparse.ArgumentTypeError("give at least one value, e.g. 16,32")
        return values
    return parse


def names(*choices: str) -> Callable[[str], List[str]]:
    """A comma-separated subset of ``choices`` (e.g. ``trajectory,sg_update``)."""
    def parse(text: str) -> List[str]:
        values = [v.strip() for v in text.split(",") if v.strip()]
        wrong = [v for v in values if v not in choices]
        if wrong or not values:
            raise argparse.ArgumentTypeError(f"{', '.join(wrong) or text!r} not among {', '.join(choices)} "
                                             "(comma separated)")
        return values
    return parse
