"""Routing of arrays to the kernels that can update them in place, without copies."""

from __future__ import annotations

from types import ModuleType

from . import cpu


def backend_for(params) -> ModuleType:
    """The backend module for ``params`` (its functions are named like the optimizers): CUDA when
    params[0] lives on a CUDA device, else the CPU. Each backend checks every array itself, so a
    list mixing devices is refused there, naming the first array on the other device."""
    first = params[0] if isinstance(params, (list, tuple)) and params else None
    if first is not None and hasattr(first, "__cuda_array_interface__"):
        from . import cuda

        return cuda
    return cpu
