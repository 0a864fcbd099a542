"""Checks of the target array and the calls into the compiled fills."""

from __future__ import annotations

import math

import numpy as np

from .. import _core, backends
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
    """The array to write: ``tensor`` itself, or a CuPy view of a CUDA array (never a copy)."""
    if backends.is_cuda_array(tensor):
        from ..backends import cuda

        tensor = cuda.as_cupy("tensor", tensor)
    elif not isinstance(tensor, np.ndarray):
        raise TypeError(f"tensor: expected a numpy.ndarray or a CUDA array, got {type(tensor).__name__}")
    out_kind(tensor)
    if not tensor.flags.c_contiguous:
        raise ValueError("tensor: array is not C-contiguous; fusedopt fills in place and never copies")
    if isinstance(tensor, np.ndarray) and not tensor.flags.writeable:
        raise ValueError("tensor: array is read-only; it is filled in place")
    return tensor


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
    if not isinstance(tensor, np.ndarray):
        view = check_target(tensor)
        if np.ndim(values) == 0:
            view.fill(values)
        else:
            view.set(np.ascontiguousarray(np.broadcast_to(values, view.shape), dtype=view.dtype))
        return
    if isinstance(tensor, BFloat16Bits):
        bits = np.asarray(values, np.float32).view(np.uint32).astype(np.uint64)
        rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)
        tensor.view(np.ndarray)[...] = rounded
    else:
        tensor[...] = values


def fill_function(target):
    """The compiled fill for a checked target: the CPU's, or the CUDA backend's for a CuPy array."""
    if isinstance(target, np.ndarray):
        return _core.init_fill
    from ..backends import cuda

    return cuda.init_fill


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
    fill_function(target)(target, out_kind=kind, distribution=distribution, a=a, b=b, mean=mean, std=std, y_lo=y_lo,
                    y_hi=y_hi, upper_below=upper, seed=s, stream=stream)
    return tensor
