"""fusedopt: fused optimizer updates and weight initializers, checked against a NumPy reference.

    import fusedopt
    opt = fusedopt.Adam([W, b], lr=1e-3)
    opt.step([gW, gb])          # in place, one fused call for all tensors
"""

from __future__ import annotations

import os as _os
from typing import Any, Dict

from . import functional, init, optim, reference
from ._core import __version__, get_num_threads, set_num_threads
from .init import manual_seed
from .optim import *  # noqa: F401,F403 - the optimizer classes (fusedopt.Adam, ...)

__all__ = [
    *optim.__all__,
    "functional", "init", "optim", "reference", "manual_seed",
    "cpu_info", "set_num_threads", "get_num_threads", "get_include", "__version__",
]


def cpu_info() -> Dict[str, Any]:
    """The CPU kernels in use: ``isa`` ("avx512", "avx2" or "baseline", chosen at run time or by
    the ``FUSEDOPT_ISA`` environment variable), ``available_isas``, ``num_threads`` and build facts."""
    from . import _core

    return _core.cpu_info()


def get_include() -> str:
    """Folder of the installed C++ headers (the per-element rules, usable from C++ and CUDA)."""
    return _os.path.join(_os.path.dirname(__file__), "include")
