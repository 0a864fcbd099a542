"""Routing of arrays to the kernels that can update them in place, without copies."""

from __future__ import annotations

from types import ModuleType

import numpy as np

from . import cpu

DLPACK_CUDA = (2, 13)  # DLPack device types kDLCUDA and kDLCUDAManaged


def is_cuda_array(a) -> bool:
    """True for a CuPy array or anything that says it lives on a CUDA device
    (``__cuda_array_interface__``, or a DLPack device of CUDA type). Imports nothing."""
    if type(a).__module__.startswith("cupy"):
        return True
    if isinstance(a, np.ndarray):
        return False
    if hasattr(a, "__cuda_array_interface__"):
        return True
    device = getattr(a, "__dlpack_device__", None)
    if device is None:
        return False
    try:
        return device()[0] in DLPACK_CUDA
    except Exception:  # noqa: BLE001 - an object whose DLPack query fails is not a CUDA array here
        return False


def backend_for(params) -> ModuleType:
    """The backend module for ``params`` (its functions are named like the optimizers): CUDA when
    params[0] lives on a CUDA device, else the CPU. Each backend checks every array itself, so a
    list mixing devices is refused there, naming the first array on the other device."""
    first = params[0] if isinstance(params, (list, tuple)) and params else None
    if first is not None and is_cuda_array(first):
        from . import cuda

        return cuda
    return cpu
