"""Hyperparameter checks shared by the functional optimizers (DESIGN.md §5): each raises
TypeError for the wrong kind of value and ValueError for a value out of range, naming the argument."""

from __future__ import annotations

import math
import numbers

_EXACT_REALS = (float, int)


def _real(name: str, value) -> float:
    if type(value) not in _EXACT_REALS and (isinstance(value, bool) or not isinstance(value, numbers.Real)):
        raise TypeError(f"{name}: expected a real number, got {type(value).__name__}")
    return float(value)


def non_negative(name: str, value) -> None:
    """Finite and >= 0 (lr, eps, weight_decay, momentum, ...)."""
    v = _real(name, value)
    if not 0.0 <= v < math.inf:
        raise ValueError(f"{name}: expected a finite value >= 0, got {value!r}")


def in_unit_interval(name: str, value, *, closed: bool = False) -> None:
    """0 <= value < 1 (betas), or 0 <= value <= 1 with closed=True (alpha, dampening)."""
    v = _real(name, value)
    if not (0.0 <= v <= 1.0 if closed else 0.0 <= v < 1.0):
        raise ValueError(f"{name}: expected a value in [0, 1{']' if closed else ')'}, got {value!r}")


def betas(value) -> None:
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise TypeError(f"betas: expected a pair (beta1, beta2), got {value!r}")
    in_unit_interval("betas[0]", value[0])
    in_unit_interval("betas[1]", value[1])


def flag(name: str, value) -> None:
    if not isinstance(value, bool) and type(value).__name__ != "bool_":
        raise TypeError(f"{name}: expected a bool, got {type(value).__name__}")


def step(value) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"step: expected an int (the step being taken, from 1), got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"step: expected an int >= 1 (the step being taken), got {value!r}")
