"""The one seam for everything device-specific (DESIGN.md §1): ``for_arrays(arrays)`` returns the
backend that owns the arrays' device, a module with the same functions for every device:

* ``step(spec, variant, names, lists, scalars)``: one fused step of a rule variant, checked first;
* ``Plan(calls, n_params)``: an optimizer's params and state checked once, ``.step(grads, variants,
  scalars)`` checking only the gradients (False, nothing written, when one is None);
* ``adafactor_step(params, grads, row_vars, col_vars, variances, scalars)``: Adafactor's step (its
  state is not shaped like its params);
* ``grad_norm(grads)``: (sum of squares, all finite) over a list of gradients of one dtype;
* ``check_param(p, where)``, ``memory_extent(p)``, ``dtype_name(p)``, ``full_like(p, value)``, ``zeros_like_shape(p, shape)``, ``copy_like(value, p)``: what an optimizer
  needs to take a param and make or restore its state on the param's device;
* ``fill_target(tensor)``, ``fill(target, **constants)``, ``assign(target, values)``: the
  initializers' in-place writes.

No other layer imports CuPy or branches on the device."""

from __future__ import annotations

from types import ModuleType

import numpy as np

DLPACK_CUDA = (2, 13)  # DLPack device types kDLCUDA and kDLCUDAManaged


def is_cuda_array(a) -> bool:
    """True for a CuPy array or anything that says it lives on a CUDA device
    (``__cuda_array_interface__``, or a DLPack device of CUDA type). Imports nothing."""
    if type(a).__module__.startswith("cupy"):
        return True
    if isinstance(a, np.ndarray):
        return False
    if type(a).__module__.split(".")[0] == "torch" and hasattr(a, "is_cuda"):
        return bool(a.is_cuda)  # torch's __cuda_array_interface__ raises for a tensor that requires grad
    if hasattr(a, "__cuda_array_interface__"):
        return True
    device = getattr(a, "__dlpack_device__", None)
    if device is None:
        return False
    try:
        return device()[0] in DLPACK_CUDA
    except Exception:  # noqa: BLE001 - an object whose DLPack query fails is not a CUDA array here
        return False


def refuse_overlaps(extents, name, rule: str = "the arrays of one step must not overlap (only a grad may be its "
                                                 "own param)") -> None:
    """ValueError naming the first two arrays whose bytes overlap. ``extents``: (begin, end, slot,
    index) per array, the bytes [begin, end) in one address space; ``name(slot, index)`` names one.
    Slot 0 is params and slot 1 grads: a grad with exactly its own param's bytes is allowed (as in
    the compiled core's check, cpp/src/overlap.cpp)."""
    furthest = None
    for e in sorted(e for e in extents if e[1] > e[0]):
        if furthest is not None and e[0] < furthest[1]:
            allowed = ({furthest[2], e[2]} == {0, 1} and furthest[3] == e[3] and furthest[:2] == e[:2])
            if not allowed:
                # a grad first (it is what changes from step to step), else the later in argument order
                later, earlier = sorted((furthest, e), key=lambda x: (x[2] == 1, x[2], x[3]), reverse=True)
                raise ValueError(f"{name(*later[2:])}: shares memory with {name(*earlier[2:])}; {rule}")
        if furthest is None or e[1] > furthest[1]:
            furthest = e


def is_array(a) -> bool:
    """An array some backend can take (a NumPy array or a CUDA array)."""
    return isinstance(a, np.ndarray) or is_cuda_array(a)


from . import cpu as _cpu  # noqa: E402 - after is_cuda_array, which it uses


def for_array(a) -> ModuleType:
    """The backend of one array: CUDA for a CUDA array, else the CPU (which refuses non-arrays)."""
    if is_cuda_array(a):
        from . import cuda

        return cuda
    from . import cpu

    return cpu


def for_arrays(arrays) -> ModuleType:
    """The backend for a list of arrays: that of the first one. Each backend checks every array
    itself, so a list mixing devices is refused there, naming the first array on the other device."""
    first = arrays[0] if isinstance(arrays, (list, tuple)) and arrays else None
    if type(first) is np.ndarray:
        return _cpu
    return for_array(first)
