"""Routing of arrays to the kernels that can update them in place, without copies."""

from __future__ import annotations

from types import ModuleType

from . import cpu


def backend_for(params) -> ModuleType:
    """The backend module for ``params`` (its functions are named like the optimizers)."""
    first = params[0] if isinstance(params, (list, tuple)) and params else None
    if first is not None and hasattr(first, "__cuda_array_interface__"):
        raise TypeError(f"params[0]: {type(first).__name__} lives on a CUDA device; this build of fusedopt "
                        "has no CUDA backend yet")
    return cpu  # it checks every array itself and names any that is not a NumPy array
