"""Checks of the target array and the calls into the compiled fills."""

from __future__ import annotations

import math

import numpy as np

from .. import backends
from . import generator as _generator

UNIFORM, NORMAL, TRUNCATED = 0, 1, 2
_KIND = {np.dtype(np.float32): 0, np.dtype(np.float64): 1, np.dtype(np.float16): 2}


class BFloat16Bits(np.ndarray):
    """uint16 storage holding bfloat16 bit patterns (the plain forms' bfloat16 without ml_dtypes)."""


def out_kind(tensor) -> int:
    """0 float32, 1 float64, 2 float16, 3 bfloat16 (ml_dtypes' dtype, or BFloat16Bits)."""
    if isinstance(tensor, BFloat16Bits):
        return 3
    kind = _KIND.get(tensor.dtype)
    if kind is None:
        if tensor.dtype.name == "bfloat16" and tensor.dtype.itemsize == 2:
            return 3
        raise TypeError(f"tensor: dtype {tensor.dtype} is not supported; expected float32, float64, float16 or "
                        "bfloat16 (ml_dtypes)")
    return kind


def check_target(tensor):
    """The array to write: ``tensor`` itself, or its backend's view of it (never a copy)."""
    target = backends.for_array(tensor).fill_target(tensor)
    out_kind(target)
    return target


def _bf16_round(x: float) -> float:
    bits = int(np.array(x, np.float32).view(np.uint32))
    bits = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return float(np.array(bits << 16, np.uint32).view(np.float32))


def _bf16_below(x: float) -> float:
    """Largest bfloat16 value < x."""
    v = _bf16_round(x)
    bits = int(np.array(v, np.float32).view(np.uint32)) >> 16
    while v >= x:
        bits = bits - 1 if v > 0 else (bits + 1 if v < 0 else 0x8001)
        v = float(np.array(bits << 16, np.uint32).view(np.float32))
    return v


def largest_below(b: float, kind: int) -> float:
    """The largest value of the output type strictly below b: uniform fills never reach b."""
    if kind == 3:
        return _bf16_below(b)
    t = {0: np.float32, 1: np.float64, 2: np.float16}[kind]
    v = t(b)
    if float(v) >= b:
        v = np.nextafter(v, t(-np.inf))
    return float(v)


def assign(tensor, values) -> None:
    """tensor[...] = values (host values, broadcast), rounding to bfloat16 bit patterns for
    BFloat16Bits storage; a CUDA target gets one host-to-device copy (or a fill for a scalar)."""
    if isinstance(tensor, BFloat16Bits):
        bits = np.asarray(values, np.float32).view(np.uint32).astype(np.uint64)
        rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)
        tensor.view(np.ndarray)[...] = rounded
        return
    backends.for_array(tensor).assign(check_target(tensor), values)


def fill(tensor, distribution, *, a=0.0, b=1.0, mean=0.0, std=1.0, generator=None, seed=None):
    target = check_target(tensor)
    kind = out_kind(target)
    y_lo = y_hi = upper = 0.0
    if distribution == UNIFORM:
        upper = largest_below(b, kind)
    elif distribution == TRUNCATED:
        y_lo = math.erf((a - mean) / (std * math.sqrt(2.0)))
        y_hi = math.erf((b - mean) / (std * math.sqrt(2.0)))
    s, stream = _generator.resolve(generator, seed)
    backends.for_array(target).fill(target, out_kind=kind, distribution=distribution, a=a, b=b, mean=mean, std=std, y_lo=y_lo,
                                          y_hi=y_hi, upper_below=upper, seed=s, stream=stream)
    return tensor
