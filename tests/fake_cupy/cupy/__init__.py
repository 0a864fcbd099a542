"""A stand-in for CuPy on machines without a GPU, for tests/test_gpu_tests_on_host.py only: "device
memory" is 256-byte aligned host memory, and RawModule compiles the CUDA source as C++ with the
built-in index variables emulated (tests/cuda/host_emulation.hpp), so a kernel launch runs every
(block, thread) pair in turn on the host. With it, the GPU test modules run unchanged through the
whole CUDA code path of fusedopt (routing, checks, chunk tables, launches, fills, state).

Like CuPy, an array here is not a numpy.ndarray and refuses implicit conversion to one, so code that
routes a CUDA array to a CPU path fails here as it would on a GPU. It covers only what fusedopt and
its GPU tests use; anything else raises AttributeError. Streams are accepted and ignored (launches
run at once)."""

from __future__ import annotations

import numpy as np

from . import cuda
from ._compile import RawModule  # noqa: F401 - cupy.RawModule

__version__ = "0.0-host-emulation"

float16, float32, float64, int32, int64, uint8 = np.float16, np.float32, np.float64, np.int32, np.int64, np.uint8
_ALIGN = 256  # as cudaMalloc


class MemoryPointer:
    def __init__(self, ptr: int):
        self.ptr, self.device_id = ptr, cuda.runtime.getDevice()


class ndarray:
    """A "device" array: a numpy array held inside, reachable only through CuPy's API."""

    __slots__ = ("_host", "__weakref__")

    def __init__(self, host: np.ndarray):
        self._host = host

    shape = property(lambda self: self._host.shape)
    dtype = property(lambda self: self._host.dtype)
    size = property(lambda self: self._host.size)
    ndim = property(lambda self: self._host.ndim)
    strides = property(lambda self: self._host.strides)
    itemsize = property(lambda self: self._host.itemsize)
    nbytes = property(lambda self: self._host.nbytes)
    flags = property(lambda self: self._host.flags)
    data = property(lambda self: MemoryPointer(self._host.ctypes.data))

    @property
    def __cuda_array_interface__(self):
        return {"shape": self.shape, "typestr": self.dtype.str, "data": (self._host.ctypes.data, False),
                "strides": None if self.flags.c_contiguous else self.strides, "version": 3}

    def __array__(self, *args, **kwargs):
        raise TypeError("Implicit conversion to a NumPy array is not allowed. "
                        "Please use `.get()` to construct a NumPy array explicitly.")

    def __len__(self):
        return len(self._host)

    def __getitem__(self, key):
        return ndarray(self._host[key])

    def __setitem__(self, key, value):
        self._host[key] = value._host if isinstance(value, ndarray) else value

    def __float__(self):
        return float(self._host)

    def __repr__(self):
        return f"fake_cupy.ndarray({self._host!r})"

    def get(self) -> np.ndarray:
        return self._host.copy()

    def set(self, host) -> None:
        host = np.asarray(host)
        if host.shape != self.shape or host.dtype != self.dtype:
            raise ValueError(f"set: shape {host.shape} {host.dtype} does not match {self.shape} {self.dtype}")
        self._host[...] = host

    def fill(self, value) -> None:
        self._host.fill(value)

    def copy(self) -> "ndarray":
        return array(self)

    def reshape(self, *shape) -> "ndarray":
        return ndarray(self._host.reshape(*shape))

    def view(self, dtype) -> "ndarray":
        return ndarray(self._host.view(dtype))

    def ravel(self) -> "ndarray":
        return ndarray(self._host.ravel())


def _empty(shape, dtype) -> ndarray:
    dtype = np.dtype(dtype)
    shape = (shape,) if np.ndim(shape) == 0 else tuple(shape)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    buf = np.empty(nbytes + _ALIGN, np.uint8)
    start = -buf.ctypes.data % _ALIGN
    return ndarray(buf[start:start + nbytes].view(dtype).reshape(shape))


def _host_values(obj, dtype=None) -> np.ndarray:
    return obj._host if isinstance(obj, ndarray) else np.asarray(obj, dtype)


def empty(shape, dtype=np.float64) -> ndarray:
    return _empty(shape, dtype)


def full(shape, value, dtype=np.float64) -> ndarray:
    out = _empty(shape, dtype)
    out.fill(value)
    return out


def zeros(shape, dtype=np.float64) -> ndarray:
    return full(shape, 0, dtype)


def ones(shape, dtype=np.float64) -> ndarray:
    return full(shape, 1, dtype)


def empty_like(a, dtype=None) -> ndarray:
    return _empty(a.shape, dtype or a.dtype)


def full_like(a, value, dtype=None) -> ndarray:
    return full(a.shape, value, dtype or a.dtype)


def zeros_like(a, dtype=None) -> ndarray:
    return full_like(a, 0, dtype)


def ones_like(a, dtype=None) -> ndarray:
    return full_like(a, 1, dtype)


def arange(*args, dtype=None) -> ndarray:
    return array(np.arange(*args, dtype=dtype))


def array(obj, dtype=None, copy=True, order="K") -> ndarray:
    """A new device array with obj's values (a host-to-device or device-to-device copy)."""
    values = _host_values(obj, dtype)
    out = _empty(values.shape, dtype or values.dtype)
    out._host[...] = values
    return out


class _HostInterface:
    """The memory a __cuda_array_interface__ describes, as NumPy sees it (here it is host memory)."""

    def __init__(self, cuda_interface: dict):
        self.__array_interface__ = {k: cuda_interface[k] for k in ("shape", "typestr", "data", "strides")}
        self.__array_interface__["version"] = 3


def asarray(obj, dtype=None) -> ndarray:
    """obj itself, a view of another framework's CUDA array (__cuda_array_interface__), or a copy of
    host values."""
    if isinstance(obj, ndarray) and (dtype is None or np.dtype(dtype) == obj.dtype):
        return obj
    if hasattr(obj, "__cuda_array_interface__") and dtype is None:
        return ndarray(np.asarray(_HostInterface(obj.__cuda_array_interface__)))
    return array(obj, dtype)


def asnumpy(a) -> np.ndarray:
    return a.get() if isinstance(a, ndarray) else np.asarray(a)


def from_dlpack(obj):
    raise TypeError(f"fake cupy: no DLPack on the host emulation ({type(obj).__name__})")


class _MemoryPool:
    def free_all_blocks(self) -> None:
        pass


def get_default_memory_pool() -> _MemoryPool:
    return _MemoryPool()
