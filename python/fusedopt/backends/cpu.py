"""CPU backend: the C++ kernels of fusedopt._core over NumPy arrays (float32, float64, and the
16-bit storage types bfloat16 (``ml_dtypes.bfloat16``) and float16)."""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from .._core import Plan, adafactor_step, grad_norm, init_fill
from .._core import step as _step

__all__ = ["step", "Plan", "adafactor_step", "zeros_like_shape", "grad_norm", "check_param", "memory_extent", "dtype_name", "full_like", "copy_like", "fill_target",
           "fill", "assign"]

_SUPPORTED_NAMES = ("float32", "float64", "bfloat16", "float16")


def step(spec, variant: int, names, lists, scalars: bytes, master=None, rounding=None) -> None:
    _step(spec.rule_index, variant, names, lists, scalars, master=master, rounding=rounding)


def check_param(p, where: str) -> None:
    if not isinstance(p, np.ndarray):
        raise TypeError(f"{where}: expected a numpy.ndarray, got {type(p).__name__}")
    if p.dtype.name not in _SUPPORTED_NAMES or p.dtype.byteorder not in "=|":
        raise TypeError(f"{where}: dtype {p.dtype} is not supported; expected float32, float64, bfloat16 "
                        f"(ml_dtypes) or float16")
    if not p.flags.c_contiguous:
        raise ValueError(f"{where}: array is not C-contiguous; fusedopt updates in place and never copies")
    if not p.flags.aligned:
        raise ValueError(f"{where}: array is not aligned to its dtype")
    if not p.flags.writeable:
        raise ValueError(f"{where}: array is read-only; it is updated in place, so it must be writable")


def memory_extent(p):
    """(address space, first byte, end) of a C-contiguous array."""
    begin = p.__array_interface__["data"][0]
    return "cpu", begin, begin + p.nbytes


def dtype_name(p) -> str:
    return p.dtype.name


PAGE = 4096
PLACED_FROM = 64 * 1024  # bytes: smaller state buffers are allocated where the allocator puts them


def placed_start(raw_address: int, param_address: int, slot: Tuple[int, int]) -> int:
    """Where, in bytes from ``raw_address`` (a buffer of at least PAGE bytes more than needed), state
    buffer ``slot = (k, count)`` of a param at ``param_address`` starts (k = 1 .. count): k/(count + 1)
    of a 4 KiB page after the param, 64-byte aligned. An elementwise step loads and stores every
    array at the same index; two of them whose addresses agree in their low 12 bits, one a little
    ahead of the other, make the CPU hold each load behind an unrelated store ("4K aliasing"): LAMB
    over 1.6e5 params in cache took twice as long with its ``exp_avg_sq`` 48 bytes after the param
    (benchmarks/RESULTS.md)."""
    k, count = slot
    offset = (param_address + PAGE * k // (count + 1) // 64 * 64) % PAGE
    return (offset - raw_address) % PAGE


def _placed_empty(p, shape, dtype, slot: Optional[Tuple[int, int]]):
    """An uninitialised C-contiguous array of ``shape``: placed (placed_start) when ``slot`` is given
    and it has PLACED_FROM bytes or more."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if slot is None or nbytes < PLACED_FROM:
        return np.empty(shape, dtype)
    raw = np.empty(nbytes + PAGE, np.uint8)
    start = placed_start(raw.ctypes.data, p.ctypes.data, slot)
    return raw[start:start + nbytes].view(dtype).reshape(shape)


def full_like(p, value, dtype=None, slot: Optional[Tuple[int, int]] = None):
    """An array shaped like ``p`` filled with ``value``, of ``dtype`` (default: p's); ``slot``: which
    of the param's state buffers it is, (k, count), to place it apart from the others (_placed_empty)."""
    out = _placed_empty(p, p.shape, p.dtype if dtype is None else dtype, slot)
    out[...] = value
    return out


def copy_like(value, p, dtype=None, slot: Optional[Tuple[int, int]] = None):
    """A C-contiguous copy of saved state ``value`` (from any device) with the dtype of param ``p``
    (or ``dtype``), placed as full_like's."""
    from . import is_cuda_array

    if is_cuda_array(value):
        from . import cuda

        value = cuda.to_host(value)
    value = np.asarray(value)
    out = _placed_empty(p, value.shape, p.dtype if dtype is None else dtype, slot)
    out[...] = value
    return out


def _torch_cpu_view(tensor):
    """The NumPy view of a CPU torch tensor's memory (no copy), or None for anything else."""
    if type(tensor).__module__.split(".")[0] != "torch" or not hasattr(tensor, "detach"):
        return None
    if tensor.device.type != "cpu":
        return None
    try:
        return tensor.detach().numpy()
    except (TypeError, RuntimeError) as e:  # a dtype NumPy has no view for (bfloat16)
        raise TypeError(f"tensor: {tensor.dtype} tensors cannot be filled in place here ({e})") from None


def fill_target(tensor):
    view = _torch_cpu_view(tensor)
    if view is not None:
        tensor = view
    if not isinstance(tensor, np.ndarray):
        raise TypeError(f"tensor: expected a numpy.ndarray or a CUDA array, got {type(tensor).__name__}")
    if not tensor.flags.c_contiguous:
        raise ValueError("tensor: array is not C-contiguous; fusedopt fills in place and never copies")
    if not tensor.flags.aligned:
        raise ValueError("tensor: array is not aligned to its dtype")
    if not tensor.flags.writeable:
        raise ValueError("tensor: array is read-only; it is filled in place")
    return tensor


fill = init_fill


def assign(target, values) -> None:
    target[...] = values


def zeros_like_shape(p, shape):
    """Zeros of ``shape`` with the dtype of param ``p`` (a state buffer not shaped like its param)."""
    return np.zeros(shape, dtype=p.dtype)
