"""RawModule of the host emulation: the CUDA source compiled as C++ (g++) with the built-in index
variables emulated; a launch runs every (block, thread) pair in turn and returns when done. A module
made with enable_cooperative_groups launches its kernels cooperatively: each thread a fiber, the grid's
syncs kept (host_emulation.hpp), and, as CUDA, no more blocks than the device holds at once
(cuda.driver.occupancyMaxActiveBlocksPerMultiprocessor blocks on each multiprocessor).

The NVRTC options fusedopt passes are mapped to the host compiler's (--fmad=false is
-ffp-contract=off); any other option is an error, so a new one cannot go unnoticed. Each launch checks
the argument count and each argument's size against the kernel's parameters, as a wrong one would
read garbage on a GPU."""

from __future__ import annotations

import ctypes
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

HOST_EMULATION = Path(__file__).resolve().parents[2] / "cuda"  # tests/cuda/host_emulation.hpp
_MAX_PARAMS = 64

_LAUNCHER = r'''
#include "host_emulation.hpp"
#include "module.cu"
#include <cstring>

namespace {
template <typename... Args>
int param_sizes(void (*)(Args...), int* sizes) {
  int i = 0;
  ((sizes[i++] = static_cast<int>(sizeof(Args))), ...);
  return static_cast<int>(sizeof...(Args));
}
}  // namespace

// launch != 0: run the kernel; else write its parameter sizes and return their count (-1: no such kernel).
extern "C" int fake_kernel(const char* name, int launch, unsigned grid, unsigned block, void** args, int* sizes,
                           int cooperative) {
KERNELS
  return -1;
}
'''


def _compiler() -> str:
    compiler = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")
    if compiler is None:
        raise RuntimeError("fake cupy: no C++ compiler for the host emulation")
    return compiler


def _host_flags(options) -> list:
    flags = []
    for option in options:
        if option == "--fmad=false":
            flags.append("-ffp-contract=off")
        elif option.startswith("-I") or option == "-std=c++17":
            flags.append(option)
        else:
            raise ValueError(f"fake cupy: NVRTC option {option!r} has no host equivalent here")
    return flags


def _dispatch(name: str, function: str) -> str:
    """The launcher's branch for one kernel: its parameter sizes, or a launch."""
    return (f'  if (std::strcmp(name, "{name}") == 0) {{\n'
            f"    if (!launch) return param_sizes(&{function}, sizes);\n"
            f"    host_emulation::launch(&{function}, grid, block, args, cooperative != 0);\n"
            f"    return 0;\n  }}\n")


def _build(code: str, flags, name_expressions, work: Path, lib: Path) -> None:
    """Compiles code with a launcher for each of its extern "C" kernels and each name expression (a
    kernel template's instantiation, as NVRTC takes it) into lib (renamed into place, so other
    processes see it whole or not at all)."""
    (work / "module.cu").write_text(code)
    base = [_compiler(), *flags, f"-I{HOST_EMULATION}", f"-I{work}"]
    expanded = subprocess.run(base + ["-x", "c++", "-E", "-include", "host_emulation.hpp", str(work / "module.cu")],
                              check=True, capture_output=True, text=True).stdout
    names = sorted(set(re.findall(r'extern\s+"C"\s+void\s+(\w+)\s*\(', expanded)))
    branches = [_dispatch(n, n) for n in names] + [_dispatch(e, e) for e in name_expressions]
    (work / "launcher.cpp").write_text(_LAUNCHER.replace("KERNELS", "".join(branches)))
    subprocess.run(base + ["-O2", "-fno-strict-aliasing", "-fPIC", "-shared", "-o", str(work / "module.so"),
                           str(work / "launcher.cpp")], check=True)
    os.replace(work / "module.so", lib)


class RawModule:
    def __init__(self, code: str, options=(), name_expressions=(), enable_cooperative_groups=False, **kwargs):
        if kwargs:
            raise TypeError(f"fake cupy: RawModule keywords {sorted(kwargs)} are not emulated")
        flags = _host_flags(options)
        emulation = (HOST_EMULATION / "host_emulation.hpp").read_text()
        name_expressions = tuple(name_expressions or ())
        key = hashlib.sha256("\0".join([code, *flags, *name_expressions, _compiler(), emulation, _LAUNCHER])
                             .encode()).hexdigest()[:24]
        cache = Path(tempfile.gettempdir()) / f"fusedopt_fake_cupy_{os.getuid()}"
        lib = cache / f"{key}.so"
        if not lib.exists():
            cache.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=cache) as work:  # this process's own files
                _build(code, flags, name_expressions, Path(work), lib)
        self._dll = ctypes.CDLL(str(lib))
        self._dll.fake_kernel.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_uint, ctypes.c_uint,
                                          ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_int), ctypes.c_int]
        self._dll.fake_kernel.restype = ctypes.c_int
        self._cooperative = bool(enable_cooperative_groups)

    def get_function(self, name: str) -> "RawKernel":  # a kernel's name, or one of the name expressions
        sizes = (ctypes.c_int * _MAX_PARAMS)()
        count = self._dll.fake_kernel(name.encode(), 0, 0, 0, None, sizes, 0)
        if count < 0:
            raise RuntimeError(f"fake cupy: no kernel named {name!r} in the module")
        return RawKernel(self._dll, name, list(sizes[:count]), self._cooperative)


def _one_dimension(dims, what: str) -> int:
    dims = (dims,) if isinstance(dims, int) else tuple(dims)
    if any(d != 1 for d in dims[1:]) or not 0 < dims[0] < 2**31:
        raise ValueError(f"fake cupy: {what} {dims} (only 1-D launches are emulated)")
    return int(dims[0])


class _Function:
    """RawKernel.kernel: the compiled function, its handle in ptr (here the kernel's name)."""

    def __init__(self, name: str):
        self.ptr = name


class RawKernel:
    def __init__(self, dll, name: str, param_sizes, cooperative: bool = False):
        self._dll, self.name, self._param_sizes, self._cooperative = dll, name, param_sizes, cooperative
        self.kernel = _Function(name)

    def __call__(self, grid, block, args, **kwargs):
        from . import ndarray

        if len(args) != len(self._param_sizes):
            raise TypeError(f"fake cupy: {self.name} takes {len(self._param_sizes)} arguments, got {len(args)}")
        values = []
        for i, (a, size) in enumerate(zip(args, self._param_sizes)):
            if isinstance(a, ndarray):
                value = np.array(a.data.ptr, np.uint64)
            elif isinstance(a, np.generic):
                value = np.array(a)
            else:  # CuPy guesses a C type for Python scalars; fusedopt always says which
                raise TypeError(f"fake cupy: {self.name} argument {i} is a {type(a).__name__}; pass a NumPy scalar")
            if value.itemsize != size:
                raise TypeError(f"fake cupy: {self.name} argument {i} has {value.itemsize} bytes, the kernel's "
                                f"parameter {size}")
            values.append(value)
        pointers = (ctypes.c_void_p * max(1, len(values)))(*[v.ctypes.data for v in values])
        grid_x, block_x = _one_dimension(grid, "grid"), _one_dimension(block, "block")
        from . import cuda

        if self._cooperative:  # CuPy would shrink the grid, with a warning; a grid that does not fit is a bug here
            fits = cuda.driver.occupancyMaxActiveBlocksPerMultiprocessor(self.kernel.ptr, block_x, 0) * \
                cuda.Device().attributes["MultiProcessorCount"]
            if grid_x > fits:
                raise ValueError(f"fake cupy: cooperative launch of {self.name} with {grid_x} blocks; the device holds "
                                 f"{fits} at once")

        def launch(_keep=values):  # the argument values as they were at the call, as a captured launch keeps them
            if self._dll.fake_kernel(self.name.encode(), 1, grid_x, block_x, pointers, None, int(self._cooperative)):
                raise RuntimeError(f"fake cupy: launch of {self.name} failed")

        cuda.get_current_stream().run(launch)
