"""Test functions to watch optimizers move on: a value and its gradient at any point.

Each :class:`Surface` takes points as arrays whose last axis holds the coordinates (``(2,)`` for one
point of a 2-D surface, ``(H, W, 2)`` for a grid), so the same function draws the contours and
feeds an optimizer::

    s = fusedopt.surfaces.SURFACES["beale"]
    p = np.array(s.start)
    opt = fusedopt.Adam([p], lr=0.05)
    for _ in range(500):
        opt.step([s.gradient(p)])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Tuple

import numpy as np

__all__ = ["Surface", "SURFACES", "bowl_1d", "ill_conditioned_bowl", "rosenbrock", "beale", "saddle", "himmelblau"]


@dataclass(frozen=True)
class Surface:
    """A differentiable function of ``dim`` coordinates, with where to look at it.

    Attributes:
        name: the key in :data:`SURFACES`.
        formula: the function, for titles.
        dim: 1 or 2.
        minima: the points of its minima (empty for the saddle, which has none).
        start: a starting point that shows the surface's difficulty.
        bounds: ((x_lo, x_hi), (y_lo, y_hi)) of the region worth plotting (one pair in 1-D).
        lrs: (optimizer class name, learning rate) pairs that move each optimizer from ``start``
            towards a minimum in a few hundred steps, visibly (the SGD family shares one; AdamW and
            optimizers not listed take Adam's; ASGD, an SGD, takes SGD's).
    """

    name: str
    formula: str
    dim: int
    _value: Callable[..., np.ndarray]
    _gradient: Callable[..., Tuple[np.ndarray, ...]]
    minima: Tuple[Tuple[float, ...], ...]
    start: Tuple[float, ...]
    bounds: Tuple[Tuple[float, float], ...]
    lrs: Tuple[Tuple[str, float], ...]

    def lr_for(self, class_name: str) -> float:
        """The learning rate the demo gives optimizer class ``class_name`` on this surface."""
        table = dict(self.lrs)
        return table.get(class_name, table["Adam"])

    def _coordinates(self, point) -> Tuple[np.ndarray, ...]:
        point = np.asarray(point)
        if point.ndim == 0 or point.shape[-1] != self.dim or not np.issubdtype(point.dtype, np.floating):
            raise ValueError(f"{self.name}: expected floating points with {self.dim} coordinates on the last axis, "
                             f"got an array of shape {point.shape} and dtype {point.dtype}")
        return tuple(point[..., k] for k in range(self.dim))

    def value(self, point) -> np.ndarray:
        """f at each point (the last axis dropped)."""
        return self._value(*self._coordinates(point))

    def gradient(self, point) -> np.ndarray:
        """∇f at each point, with the point's shape and dtype."""
        point = np.asarray(point)
        return np.stack(self._gradient(*self._coordinates(point)), axis=-1).astype(point.dtype, copy=False)

    def __call__(self, point) -> np.ndarray:
        return self.value(point)


def _bowl_1d_value(x):
    return x * x


def _bowl_1d_gradient(x):
    return (2 * x,)


bowl_1d = Surface("bowl_1d", "y = x²", 1, _bowl_1d_value, _bowl_1d_gradient, ((0.0,),), (4.0,), ((-5.0, 5.0),),
                  lrs=(("SGD", 0.1), ("ASGD", 0.1), ("Adagrad", 1.0), ("RMSprop", 0.05), ("Adam", 0.2),
        ("Adamax", 0.2), ("RAdam", 0.2), ("Adadelta", 10.0), ("Rprop", 0.1), ("Lion", 0.05), ("LARS", 0.01), ("LAMB", 0.01)))

_A, _B = 0.5, 20.0  # curvatures 2·0.5 and 2·20 (condition number 40)
ill_conditioned_bowl = Surface(
    "ill_conditioned_bowl", "f = 0.5 x² + 20 y²", 2, lambda x, y: _A * x * x + _B * y * y,
    lambda x, y: (2 * _A * x, 2 * _B * y), ((0.0, 0.0),), (-4.0, 1.0), ((-5.0, 5.0), (-2.0, 2.0)),
    lrs=(("SGD", 0.02), ("ASGD", 0.02), ("Adagrad", 0.5), ("RMSprop", 0.05), ("Adam", 0.1),
        ("Adamax", 0.2), ("RAdam", 0.1), ("Adadelta", 5.0), ("Rprop", 0.05), ("Lion", 0.05), ("LARS", 0.01), ("LAMB", 0.01)))

rosenbrock = Surface(
    "rosenbrock", "f = (1 − x)² + 100 (y − x²)²", 2, lambda x, y: (1 - x) ** 2 + 100 * (y - x * x) ** 2,
    lambda x, y: (-2 * (1 - x) - 400 * x * (y - x * x), 200 * (y - x * x)), ((1.0, 1.0),), (-1.5, 2.0),
    ((-2.0, 2.0), (-1.0, 3.0)), lrs=(("SGD", 0.001), ("ASGD", 0.001), ("Adagrad", 0.5), ("RMSprop", 0.02), ("Adam", 0.1),
        ("Adamax", 0.5), ("RAdam", 0.01), ("Adadelta", 5.0), ("Rprop", 0.1), ("Lion", 0.01), ("LARS", 0.01), ("LAMB", 0.01)))


def _beale_terms(x, y):
    return 1.5 - x + x * y, 2.25 - x + x * y ** 2, 2.625 - x + x * y ** 3


def _beale_value(x, y):
    a, b, c = _beale_terms(x, y)
    return a * a + b * b + c * c


def _beale_gradient(x, y):
    a, b, c = _beale_terms(x, y)
    gx = 2 * a * (y - 1) + 2 * b * (y ** 2 - 1) + 2 * c * (y ** 3 - 1)
    gy = 2 * a * x + 2 * b * 2 * x * y + 2 * c * 3 * x * y ** 2
    return gx, gy


beale = Surface("beale", "f = (1.5 − x + xy)² + (2.25 − x + xy²)² + (2.625 − x + xy³)²", 2, _beale_value,
                _beale_gradient, ((3.0, 0.5),), (1.0, 1.5), ((-0.5, 4.5), (-2.5, 2.5)), lrs=(("SGD", 0.005), ("ASGD", 0.005), ("Adagrad", 0.5), ("RMSprop", 0.02), ("Adam", 0.1),
        ("Adamax", 0.2), ("RAdam", 0.02), ("Adadelta", 5.0), ("Rprop", 0.05), ("Lion", 0.02), ("LARS", 0.01), ("LAMB", 0.01)))

saddle = Surface("saddle", "f = x² − y²", 2, lambda x, y: x * x - y * y, lambda x, y: (2 * x, -2 * y), (),
                 (1.0, 1e-3), ((-1.5, 1.5), (-1.5, 1.5)), lrs=(("SGD", 0.01), ("ASGD", 0.01), ("Adagrad", 0.1), ("RMSprop", 0.01), ("Adam", 0.01),
        ("Adamax", 0.01), ("RAdam", 0.01), ("Adadelta", 0.01), ("Rprop", 0.01), ("Lion", 0.01), ("LARS", 0.01), ("LAMB", 0.01)))

_HIMMELBLAU_MINIMA = ((3.0, 2.0), (-2.805118, 3.131312), (-3.779310, -3.283186), (3.584428, -1.848126))
himmelblau = Surface(
    "himmelblau", "f = (x² + y − 11)² + (x + y² − 7)²", 2,
    lambda x, y: (x * x + y - 11) ** 2 + (x + y * y - 7) ** 2,
    lambda x, y: (4 * x * (x * x + y - 11) + 2 * (x + y * y - 7), 2 * (x * x + y - 11) + 4 * y * (x + y * y - 7)),
    _HIMMELBLAU_MINIMA, (-0.3, -0.9), ((-5.0, 5.0), (-5.0, 5.0)), lrs=(("SGD", 0.002), ("ASGD", 0.002), ("Adagrad", 0.5), ("RMSprop", 0.02), ("Adam", 0.1),
        ("Adamax", 0.5), ("RAdam", 0.1), ("Adadelta", 1.0), ("Rprop", 0.1), ("Lion", 0.02), ("LARS", 0.01), ("LAMB", 0.01)))

SURFACES: Dict[str, Surface] = {s.name: s for s in (bowl_1d, ill_conditioned_bowl, rosenbrock, beale, saddle,
                                                    himmelblau)}
