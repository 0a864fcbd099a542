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
    "cpu_info", "set_num_threads", "get_num_threads", "set_thread_runtime", "get_thread_runtime", "get_include",
    "__version__",
]

_THREAD_RUNTIMES = ("fusedopt", "openmp")
_thread_runtime_chosen = False  # by set_thread_runtime or FUSEDOPT_THREAD_RUNTIME (fusedopt.torch then leaves it)


def set_thread_runtime(name: str) -> None:
    """Which threads run the CPU kernels' steps: ``"fusedopt"``, fusedopt's own pool (the default), or
    ``"openmp"``, the OpenMP runtime's team, which the process shares with other libraries linked to
    the same libgomp, torch's CPU ops among them. After each of its parallel ops torch's team spins
    for a few milliseconds; a step on fusedopt's pool then shares cores with it (1.2-1.6x slower at 2
    threads on 2 cores), while on ``"openmp"`` it reuses those threads. ``import fusedopt.torch``
    chooses ``"openmp"`` unless this was called or ``FUSEDOPT_THREAD_RUNTIME`` is set. Results are
    the same bits either way; a child of ``fork()`` always uses the pool."""
    global _thread_runtime_chosen
    if name not in _THREAD_RUNTIMES:
        raise ValueError(f"set_thread_runtime: expected one of {_THREAD_RUNTIMES}, got {name!r}")
    from . import _core

    _core._set_thread_runtime(name == "openmp")
    _thread_runtime_chosen = True


def get_thread_runtime() -> str:
    """``"fusedopt"`` or ``"openmp"``: see ``set_thread_runtime``."""
    from . import _core

    return "openmp" if _core._thread_runtime_is_openmp() else "fusedopt"


if "FUSEDOPT_THREAD_RUNTIME" in _os.environ:
    set_thread_runtime(_os.environ["FUSEDOPT_THREAD_RUNTIME"])


def cpu_info() -> Dict[str, Any]:
    """The CPU kernels in use: ``isa`` ("avx512", "avx2" or "baseline", chosen at run time or by
    the ``FUSEDOPT_ISA`` environment variable), ``available_isas``, ``num_threads``,
    ``thread_runtime`` (``set_thread_runtime``) and build facts."""
    from . import _core

    return _core.cpu_info()


def get_include() -> str:
    """Folder of the installed C++ headers (the per-element rules, usable from C++ and CUDA)."""
    return _os.path.join(_os.path.dirname(__file__), "include")
