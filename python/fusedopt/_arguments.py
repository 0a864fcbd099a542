"""Argument checks for the toolkit modules (data, schedules): TypeError for the wrong kind of thing,
ValueError for a bad value, each naming the argument (DESIGN.md §5)."""

from __future__ import annotations

import math
import operator
from typing import Optional


def whole(name: str, value, lo: int, below: Optional[int] = None) -> int:
    """``value`` as an int >= lo, and < below if given (any integer type; bool refused)."""
    if below is None:
        expected = f"an int >= {lo}"
    else:  # a power of two reads as one: [0, 2**64)
        bound = f"2**{below.bit_length() - 1}" if below & (below - 1) == 0 else str(below)
        expected = f"an int in [{lo}, {bound})"
    kind = "an int" if below is None else expected
    if isinstance(value, bool):
        raise TypeError(f"{name}: expected {kind}, got bool")
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(f"{name}: expected {kind}, got {type(value).__name__}") from None
    if value < lo or (below is not None and value >= below):
        raise ValueError(f"{name}: expected {expected}, got {value}")
    return value


def real(name: str, value, *, lo: float = -math.inf, hi: float = math.inf) -> float:
    """``value`` as a finite float in [lo, hi] (bool refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name}: expected a real number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value) or value < lo or value > hi:
        bounds = f" >= {lo}" if lo > -math.inf else ""
        bounds += f" and <= {hi}" if hi < math.inf else ""
        raise ValueError(f"{name}: expected a finite number{bounds}, got {value}")
    return value
