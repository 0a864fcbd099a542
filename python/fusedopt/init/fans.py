"""Fans and gains as ``torch.nn.init`` computes them, for both weight layouts."""

from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple

LAYOUTS = ("out_in", "in_out")

_LINEAR = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
           "sigmoid")


def calculate_gain(nonlinearity: str, param: Optional[float] = None) -> float:
    """The recommended gain for a nonlinearity (torch.nn.init.calculate_gain):
    linear/conv/sigmoid 1, tanh 5/3, relu √2, leaky_relu √(2/(1+slope²)) (slope 0.01 by default),
    selu 3/4."""
    if nonlinearity in _LINEAR:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif not isinstance(param, bool) and isinstance(param, (int, float)):
            slope = param
        else:
            raise ValueError(f"param: negative_slope {param!r} is not a valid number")
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"nonlinearity: unsupported nonlinearity {nonlinearity!r}")


def fans(shape: Sequence[int], layout: str = "out_in") -> Tuple[int, int]:
    """(fan_in, fan_out). ``out_in``: (out, in, *kernel) as torch; ``in_out``: (in, out) or
    (*kernel, in, out) as NumPy ``x @ W``, JAX and Keras. Fewer than 2 dimensions is an error."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout: expected one of {LAYOUTS}, got {layout!r}")
    if len(shape) < 2:
        raise ValueError(f"tensor: fan in and fan out need at least 2 dimensions, got shape {tuple(shape)}")
    if layout == "out_in":
        receptive = math.prod(shape[2:])
        return shape[1] * receptive, shape[0] * receptive
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive
