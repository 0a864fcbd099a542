"""CUDA backend: the kernels of fusedopt/cuda/*.cu compiled by CuPy (NVRTC, --fmad=false, the rules
headers on the include path), one launch per step for a whole tensor list, on the current stream.
Same functions and keywords as the CPU backend; arrays are CuPy arrays, or anything CuPy can view
without a copy (``__cuda_array_interface__``, or DLPack on a CUDA device: PyTorch, JAX, Numba).

Per step, the host work is kept to what changes: a list of the same array objects is checked once
(the check is remembered through weak references, so a freed array is never mistaken for a new one
at the same id), and the device chunk table is built once per (pointers, sizes) and reused."""

from __future__ import annotations

import functools
import hashlib
import os
import weakref
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .. import _core, get_include
from . import DLPACK_CUDA

# Elements per chunk (a multiple of 4, so aligned tensors stay aligned chunk by chunk). One block
# walks a chunk at a time: 256 threads x 4 lanes x 4 rounds. FUSEDOPT_CUDA_CHUNK overrides it
# (benchmarks/bench_gpu.py --chunks sweeps it).
DEFAULT_CHUNK = 4096
THREADS = 256
# Blocks launched per multiprocessor: 8 x 256 threads fill an H100 / A100 one, if registers allow
# (the Adam kernels allow 3-4, see benchmarks/RESULTS.md). FUSEDOPT_CUDA_BLOCKS_PER_SM overrides it
# (bench_gpu.py --grid sweeps it).
BLOCKS_PER_SM = 8
_SUPPORTED = ("float32", "float64")


@functools.lru_cache(maxsize=None)
def _cupy():
    try:
        import cupy
    except ImportError:
        raise TypeError("params: CUDA arrays need CuPy (pip install 'fusedopt[cuda]')") from None
    return cupy


def as_cupy(name: str, a):
    """A CuPy view of a CUDA array (never a copy), or TypeError naming ``name``."""
    cupy = _cupy()
    if isinstance(a, cupy.ndarray):
        return a
    if hasattr(a, "__cuda_array_interface__"):
        return cupy.asarray(a)
    device = getattr(a, "__dlpack_device__", None)
    if device is not None and not isinstance(a, np.ndarray) and device()[0] in DLPACK_CUDA:
        return cupy.from_dlpack(a)
    raise TypeError(f"{name}: {type(a).__name__} is not on a CUDA device, params[0] is: one call runs on one device")


@functools.lru_cache(maxsize=None)
def _headers_digest() -> str:
    """A hash of the installed headers. CuPy's on-disk kernel cache is keyed by the source text
    only, so the source carries this: a new version of an included header compiles anew."""
    digest = hashlib.sha256()
    root = get_include()
    for folder, _, files in sorted(os.walk(root)):
        for name in sorted(files):
            with open(os.path.join(folder, name), "rb") as f:
                digest.update(name.encode() + f.read())
    return digest.hexdigest()


FAMILIES = ("sgd", "adagrad", "rmsprop", "adam", "init")


def kernel_source(family: str) -> str:
    """The text NVRTC compiles for fusedopt/cuda/<family>.cu."""
    path = os.path.join(os.path.dirname(os.path.dirname(__file__)), "cuda", f"{family}.cu")
    with open(path) as f:
        return f"// fusedopt headers {_headers_digest()}\n" + f.read()


def compile_options() -> Tuple[str, ...]:
    """NVRTC options: no implicit contraction (--fmad=false), so the bits equal the CPU build's."""
    return ("-std=c++17", "--fmad=false", f"-I{get_include()}")


def kernel_names(family: str) -> Tuple[str, ...]:
    """The kernels of one family that this backend launches."""
    if family == "init":
        return tuple(FILL_KERNELS.values())
    return tuple(f"{family}_{dtype}" for dtype in _SUPPORTED)


@functools.lru_cache(maxsize=None)
def _kernel(family: str, name: str):
    module = _cupy().RawModule(code=kernel_source(family), options=compile_options())
    return module.get_function(name)


@functools.lru_cache(maxsize=None)
def _multiprocessors(device_id: int) -> int:
    return _cupy().cuda.Device(device_id).attributes["MultiProcessorCount"]


def _max_blocks(device_id: int) -> int:
    """The grid: enough blocks to fill every multiprocessor; the kernels stride over the rest."""
    return _multiprocessors(device_id) * blocks_per_sm()


def _device_id(array) -> int:
    return array.data.device_id


def _to_device(host_arrays):
    """The chunk table's host arrays, copied to the current device, finished before returning so
    that a kernel on any stream reads it complete."""
    cupy = _cupy()
    out = tuple(cupy.asarray(a) for a in host_arrays)
    cupy.cuda.get_current_stream().synchronize()
    return out


def _setting(variable: str, default: int, lowest: int, highest: int, multiple_of: int = 1) -> int:
    """An integer launch setting from the environment, or ValueError naming the variable."""
    text = os.environ.get(variable)
    if text is None:
        return default
    if not text.isdigit() or not lowest <= int(text) <= highest or int(text) % multiple_of:
        raise ValueError(f"{variable}: expected a multiple of {multiple_of} in [{lowest}, {highest}], got {text!r}")
    return int(text)


def chunk_size() -> int:
    return _setting("FUSEDOPT_CUDA_CHUNK", DEFAULT_CHUNK, 4, 2**30, multiple_of=4)


def blocks_per_sm() -> int:
    return _setting("FUSEDOPT_CUDA_BLOCKS_PER_SM", BLOCKS_PER_SM, 1, 64)


# --- checks ---------------------------------------------------------------------------------------

class _ListInfo:
    """What the checks learned about one list (no arrays: the cache must not keep them alive)."""

    __slots__ = ("dtype", "device", "shapes", "ptrs")

    def __init__(self, dtype, device, shapes, ptrs):
        self.dtype, self.device, self.shapes, self.ptrs = dtype, device, shapes, ptrs


# The checked lists of CuPy arrays, by the arrays' ids. An entry lives only while all of its arrays
# do: a weak reference to each drops it when one is freed, so an id reused by a new array never finds
# an old entry, and a hit costs one tuple of ids and one lookup.
_checked: Dict[Tuple[int, ...], _ListInfo] = {}
_watching: Dict[Tuple[int, ...], list] = {}  # key -> the weak references that drop it


def _forget(key: Tuple[int, ...]):
    def dropped(_ref) -> None:
        _checked.pop(key, None)
        _watching.pop(key, None)
    return dropped


def _check_list(name: str, arrays) -> _ListInfo:
    """Per-array checks of one list (DESIGN.md §5), remembered while the same CuPy arrays come back
    (a CuPy array's data pointer cannot change; another framework's tensor can be re-pointed, so
    those are checked every call)."""
    key = tuple(map(id, arrays))
    hit = _checked.get(key)
    if hit is not None:
        return hit
    cupy = _cupy()
    shapes, ptrs = [], []
    dtype = device = None
    all_cupy = True
    for i, a in enumerate(arrays):
        if type(a) is cupy.ndarray:
            v = a
        else:
            v, all_cupy = as_cupy(f"{name}[{i}]", a), False
        if dtype is None:
            dtype, device = v.dtype, v.data.device_id
        elif v.dtype != dtype:
            raise TypeError(f"{name}[{i}]: dtype {v.dtype} does not match {name}[0] dtype {dtype} "
                            "(all arrays of one call share a dtype)")
        if v.data.device_id != device:
            raise ValueError(f"{name}[{i}]: on device {v.data.device_id}, {name}[0] on device {device}")
        if not v.flags.c_contiguous:
            raise ValueError(f"{name}[{i}]: array is not C-contiguous; fusedopt updates in place and never copies")
        shapes.append(v.shape)
        ptrs.append(v.data.ptr)
    info = _ListInfo(dtype, device, tuple(shapes), tuple(ptrs))
    if not all_cupy:
        return info
    try:
        refs = [weakref.ref(a, _forget(key)) for a in arrays]
    except TypeError:  # a CuPy too old for weak references: checked every time
        return info
    if len(_checked) >= 256:
        _checked.clear()
        _watching.clear()
    _checked[key], _watching[key] = info, refs
    return info


def _check(lists: Sequence[Tuple[str, object]]) -> Tuple[str, List[Optional[_ListInfo]]]:
    """Checks every array of every list (None: a list the options do not use) against params:
    same length, dtype, device and shapes. Returns (dtype name, one _ListInfo per list)."""
    name0, params = lists[0]
    if not isinstance(params, (list, tuple)):
        raise TypeError(f"params: expected a list of arrays, got {type(params).__name__}")
    if not params:
        raise ValueError("params: empty list, nothing to update")
    infos: List[Optional[_ListInfo]] = []
    for name, arrays in lists:
        if arrays is None:
            infos.append(None)
            continue
        if not isinstance(arrays, (list, tuple)):
            raise TypeError(f"{name}: expected a list of arrays, got {type(arrays).__name__}")
        if len(arrays) != len(params):
            raise ValueError(f"{name}: expected {len(params)} arrays (one per param), got {len(arrays)}")
        info = _check_list(name, arrays)
        if not infos:
            if info.dtype.name not in _SUPPORTED:
                raise TypeError(f"params[0]: dtype {info.dtype} is not supported; expected float32 or float64")
        else:
            first = infos[0]
            if info.dtype != first.dtype:
                raise TypeError(f"{name}[0]: dtype {info.dtype} does not match params[0] dtype {first.dtype} "
                                "(all arrays of one call share a dtype)")
            if info.device != first.device:
                raise ValueError(f"{name}[0]: on device {info.device}, params[0] on device {first.device}")
            if info.shapes != first.shapes:
                i = next(i for i, (s, p) in enumerate(zip(info.shapes, first.shapes)) if s != p)
                raise ValueError(f"{name}[{i}]: shape {info.shapes[i]} does not match params[{i}] shape "
                                 f"{first.shapes[i]}")
        infos.append(info)
    _check_current_device(infos[0].device)
    return infos[0].dtype.name, infos


def _check_current_device(device: int) -> None:
    """Kernels are compiled for, and launched on, the current device: the arrays must live there."""
    current = _cupy().cuda.runtime.getDevice()
    if device != current:
        raise ValueError(f"params[0]: on CUDA device {device}, but the current device is {current}; "
                         f"call inside `with cupy.cuda.Device({device}):`")


# --- chunk table and launch -----------------------------------------------------------------------

def build_chunk_table(ptrs_per_slot: Sequence[Sequence[int]], sizes: Sequence[int], chunk: int):
    """The chunk table as host arrays: (chunk_tensor int32, chunk_start int64, sizes int64, ptrs
    uint64 [slot * n_tensors + t]). Each tensor is cut into chunks of ``chunk`` elements from 0."""
    sizes = np.asarray(sizes, np.int64).reshape(-1)
    per_tensor = (sizes + chunk - 1) // chunk
    chunk_tensor = np.repeat(np.arange(len(sizes), dtype=np.int32), per_tensor)
    first_chunk = np.cumsum(per_tensor) - per_tensor
    chunk_start = (np.arange(len(chunk_tensor), dtype=np.int64) - np.repeat(first_chunk, per_tensor)) * chunk
    ptrs = np.array(ptrs_per_slot, np.uint64).reshape(-1)
    return chunk_tensor, chunk_start, sizes, ptrs


_tables: Dict[tuple, tuple] = {}


def _chunk_table(infos: Sequence[_ListInfo]):
    """The device chunk table for these lists, built once and reused while their pointers and sizes
    stay the same (a new list at new addresses gets a new table). Returns (args, n_chunks)."""
    chunk = chunk_size()
    key = (chunk, infos[0].shapes) + tuple(info.ptrs for info in infos)
    table = _tables.get(key)
    if table is None:
        sizes = [int(np.prod(s)) for s in infos[0].shapes]
        host = build_chunk_table([info.ptrs for info in infos], sizes, chunk)
        device = _to_device(host)
        n_chunks = len(host[0])
        table = (device + (np.int32(len(sizes)), np.int32(n_chunks), np.int32(chunk)), n_chunks)
        if len(_tables) >= 64:  # a bounded cache: training loops reuse one or two lists
            _tables.clear()
        _tables[key] = table
    return table


def _launch(family: str, dtype: str, infos: Sequence[Optional[_ListInfo]], scalars, flags=()):
    """One launch for the whole step. Lists the options leave out (None) are dropped, so the kernel's
    slots are the lists in use, in order."""
    present = [info for info in infos if info is not None]
    args, n_chunks = _chunk_table(present)
    if n_chunks == 0:
        return
    t = np.float32 if dtype == "float32" else np.float64
    blocks = min(n_chunks, _max_blocks(present[0].device))
    _kernel(family, f"{family}_{dtype}")((blocks,), (THREADS,),
                                         (*args, *(t(x) for x in scalars), *(np.int32(f) for f in flags)))


# --- the optimizers (same signatures as fusedopt._core) -------------------------------------------

def check_lists(params, grads, *buffers):
    _check([("params", params), ("grads", grads)] + [(f"buffers[{k}]", b) for k, b in enumerate(buffers)])


def sgd(params, grads, momentum_buffers, *, lr, momentum, dampening, weight_decay, nesterov, maximize, first_step):
    has_momentum = momentum != 0.0
    if has_momentum and momentum_buffers is None:
        raise ValueError("momentum_buffers: required when momentum != 0")
    dtype, infos = _check([("params", params), ("grads", grads),
                           ("momentum_buffers", momentum_buffers if has_momentum else None)])
    s = _core.sgd_scalars(float64=dtype == "float64", lr=lr, momentum=momentum, dampening=dampening,
                          weight_decay=weight_decay, nesterov=nesterov, maximize=maximize)
    _launch("sgd", dtype, infos, s, (has_momentum, has_momentum and nesterov, has_momentum and first_step))


def adagrad(params, grads, state_sums, *, step, lr, lr_decay, weight_decay, eps, maximize):
    dtype, infos = _check([("params", params), ("grads", grads), ("state_sums", state_sums)])
    s = _core.adagrad_scalars(float64=dtype == "float64", step=step, lr=lr, lr_decay=lr_decay,
                              weight_decay=weight_decay, eps=eps, maximize=maximize)
    _launch("adagrad", dtype, infos, s)


def rmsprop(params, grads, square_avgs, grad_avgs, momentum_buffers, *, lr, alpha, eps, weight_decay, momentum,
            centered, maximize):
    if centered and grad_avgs is None:
        raise ValueError("grad_avgs: required when centered=True")
    if momentum > 0 and momentum_buffers is None:
        raise ValueError("momentum_buffers: required when momentum > 0")
    dtype, infos = _check([("params", params), ("grads", grads), ("square_avgs", square_avgs),
                           ("grad_avgs", grad_avgs if centered else None),
                           ("momentum_buffers", momentum_buffers if momentum > 0 else None)])
    s = _core.rmsprop_scalars(float64=dtype == "float64", lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                              momentum=momentum, centered=centered, maximize=maximize)
    _launch("rmsprop", dtype, infos, s, (centered, momentum > 0))


def adam(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, *, step, lr, beta1, beta2, eps, weight_decay, amsgrad,
         maximize, decoupled_weight_decay):
    if amsgrad and max_exp_avg_sqs is None:
        raise ValueError("max_exp_avg_sqs: required when amsgrad=True")
    dtype, infos = _check([("params", params), ("grads", grads), ("exp_avgs", exp_avgs),
                           ("exp_avg_sqs", exp_avg_sqs), ("max_exp_avg_sqs", max_exp_avg_sqs if amsgrad else None)])
    s = _core.adam_scalars(float64=dtype == "float64", step=step, lr=lr, beta1=beta1, beta2=beta2, eps=eps,
                           weight_decay=weight_decay, amsgrad=amsgrad, maximize=maximize,
                           decoupled_weight_decay=decoupled_weight_decay)
    _launch("adam", dtype, infos, s, (amsgrad,))


# --- the random fills -----------------------------------------------------------------------------

FILL_KERNELS = {0: "init_fill_float32", 1: "init_fill_float64", 2: "init_fill_float16", 3: "init_fill_bfloat16"}


def init_fill(out, *, out_kind, distribution, a, b, mean, std, y_lo, y_hi, upper_below, seed, stream):
    """Fills a C-contiguous CuPy array in place; the same bits as fusedopt._core.init_fill."""
    n = out.size
    if n == 0:
        return
    _check_current_device(_device_id(out))
    threads = THREADS
    per_block = 2 if out_kind == 1 else 4  # values per Philox block
    blocks = min(-(-n // (per_block * threads)), _max_blocks(_device_id(out)))
    _kernel("init", FILL_KERNELS[out_kind])(
        (blocks,), (threads,),
        (out, np.int64(n), np.int32(distribution), np.float64(a), np.float64(b), np.float64(mean), np.float64(std),
         np.float64(y_lo), np.float64(y_hi), np.float64(upper_below), np.uint64(seed), np.uint64(stream)))
