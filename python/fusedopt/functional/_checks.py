"""Hyperparameter checks (DESIGN.md §5): each raises TypeError for the wrong kind of value and
ValueError for a value out of range, naming the argument. Each check also knows values it refuses
(the bad-input test rows) and the values it accepts (the Hypothesis strategies), so tests of every
optimizer come from its spec."""

from __future__ import annotations

import math
import numbers
from typing import Any, List, Tuple

_EXACT_REALS = (float, int)


def _real(name: str, value) -> float:
    if type(value) not in _EXACT_REALS and (isinstance(value, bool) or not isinstance(value, numbers.Real)):
        raise TypeError(f"{name}: expected a real number, got {type(value).__name__}")
    return float(value)


class Check:
    """A validator for one hyperparameter."""

    def __call__(self, name: str, value) -> None:
        raise NotImplementedError

    def bad_values(self) -> List[Tuple[Any, type]]:
        """(value, the exception it raises): rows for the bad-input tests."""
        raise NotImplementedError

    def strategy(self, st):
        """A Hypothesis strategy of accepted values (st: hypothesis.strategies)."""
        raise NotImplementedError


class NonNegative(Check):
    """Finite and >= 0 (lr, eps, weight_decay, momentum, ...); ``typical`` bounds the random values."""

    def __init__(self, typical: float = 0.5, smallest: float = 0.0):
        self.typical, self.smallest = typical, smallest

    def __call__(self, name, value):
        v = _real(name, value)
        if not 0.0 <= v < math.inf:
            raise ValueError(f"{name}: expected a finite value >= 0, got {value!r}")

    def bad_values(self):
        return [(-1e-3, ValueError), (math.nan, ValueError), (math.inf, ValueError), ("0.1", TypeError)]

    def strategy(self, st):
        return st.floats(self.smallest, self.typical)


class Bounded(Check):
    """Finite and in [lo, hi] (Adafactor's beta2_decay <= 0, d >= 1); ``typical`` bounds the random values."""

    def __init__(self, lo: float = -math.inf, hi: float = math.inf, typical: Tuple[float, float] = (0.0, 1.0)):
        self.lo, self.hi, self.typical = lo, hi, typical

    def __call__(self, name, value):
        v = _real(name, value)
        if not (math.isfinite(v) and self.lo <= v <= self.hi):
            bound = f">= {self.lo}" if self.hi == math.inf else f"<= {self.hi}" if self.lo == -math.inf else \
                f"in [{self.lo}, {self.hi}]"
            raise ValueError(f"{name}: expected a finite value {bound}, got {value!r}")

    def bad_values(self):
        outside = self.lo - 1.0 if self.lo != -math.inf else self.hi + 1.0
        return [(outside, ValueError), (math.nan, ValueError), ("1", TypeError)]

    def strategy(self, st):
        return st.floats(*self.typical)


class UnitInterval(Check):
    """0 <= value < 1 (betas), or 0 <= value <= 1 with closed=True (alpha, dampening)."""

    def __init__(self, closed: bool = False, smallest: float = 0.0):
        self.closed, self.smallest = closed, smallest

    def __call__(self, name, value):
        v = _real(name, value)
        if not (0.0 <= v <= 1.0 if self.closed else 0.0 <= v < 1.0):
            raise ValueError(f"{name}: expected a value in [0, 1{']' if self.closed else ')'}, got {value!r}")

    def bad_values(self):
        return [(1.5, ValueError), (-0.1, ValueError), (math.nan, ValueError)] + ([] if self.closed else [(1.0, ValueError)])

    def strategy(self, st):
        return st.floats(self.smallest, 1.0 if self.closed else 0.999)


class Betas(Check):
    """A pair (beta1, beta2), each in [0, 1)."""

    _beta = UnitInterval()

    def __call__(self, name, value):
        if not isinstance(value, (tuple, list)) or len(value) != 2:
            raise TypeError(f"{name}: expected a pair (beta1, beta2), got {value!r}")
        self._beta(f"{name}[0]", value[0])
        self._beta(f"{name}[1]", value[1])

    def bad_values(self):
        return [((1.0, 0.999), ValueError), ((0.9, -0.1), ValueError), (0.9, TypeError)]

    def strategy(self, st):
        return st.tuples(self._beta.strategy(st), self._beta.strategy(st))


class Etas(Check):
    """Rprop's (etaminus, etaplus): 0 < etaminus < 1 < etaplus, both finite."""

    def __call__(self, name, value):
        if not isinstance(value, (tuple, list)) or len(value) != 2:
            raise TypeError(f"{name}: expected a pair (etaminus, etaplus), got {value!r}")
        minus, plus = _real(f"{name}[0]", value[0]), _real(f"{name}[1]", value[1])
        if not 0.0 < minus < 1.0 < plus < math.inf:
            raise ValueError(f"{name}: expected 0 < etaminus < 1 < etaplus, got {value!r}")

    def bad_values(self):
        return [((0.5, 1.0), ValueError), ((0.0, 1.2), ValueError), ((1.5, 1.2), ValueError), (0.5, TypeError)]

    def strategy(self, st):
        return st.tuples(st.floats(0.1, 0.9), st.floats(1.05, 2.0))


class StepSizes(Check):
    """Rprop's (step_size_min, step_size_max): 0 <= min <= max, both finite."""

    def __call__(self, name, value):
        if not isinstance(value, (tuple, list)) or len(value) != 2:
            raise TypeError(f"{name}: expected a pair (min, max), got {value!r}")
        lo, hi = _real(f"{name}[0]", value[0]), _real(f"{name}[1]", value[1])
        if not 0.0 <= lo <= hi < math.inf:
            raise ValueError(f"{name}: expected finite 0 <= min <= max, got {value!r}")

    def bad_values(self):
        return [((1.0, 0.5), ValueError), ((-1.0, 1.0), ValueError), ((0.0, math.inf), ValueError), (1.0, TypeError)]

    def strategy(self, st):
        return st.tuples(st.floats(0.0, 1e-3), st.floats(1e-3, 50.0))


class EpsilonPair(Check):
    """Adafactor's (eps1, eps2): eps1 None (the param dtype's machine epsilon) or finite >= 0, eps2
    finite >= 0."""

    _eps = NonNegative()

    def __call__(self, name, value):
        if not isinstance(value, (tuple, list)) or len(value) != 2:
            raise TypeError(f"{name}: expected a pair (eps1 or None, eps2), got {value!r}")
        if value[0] is not None:
            self._eps(f"{name}[0]", value[0])
        self._eps(f"{name}[1]", value[1])

    def bad_values(self):
        return [((None, -1e-3), ValueError), ((-1.0, 1e-3), ValueError), ((None, math.nan), ValueError),
                (1e-3, TypeError)]

    def strategy(self, st):
        return st.tuples(st.one_of(st.none(), st.floats(1e-30, 1e-3)), st.floats(0.0, 1e-2))


class Flag(Check):
    def __call__(self, name, value):
        if not isinstance(value, bool) and type(value).__name__ != "bool_":
            raise TypeError(f"{name}: expected a bool, got {type(value).__name__}")

    def bad_values(self):
        return [("yes", TypeError), (1, TypeError)]

    def strategy(self, st):
        return st.booleans()


def step(value) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"step: expected an int (the step being taken, from 1), got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"step: expected an int >= 1 (the step being taken), got {value!r}")
