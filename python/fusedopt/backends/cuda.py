"""CUDA backend: the kernels of fusedopt/cuda/*.cu compiled by CuPy (NVRTC, --fmad=false, the rules
headers on the include path), one launch per step for a whole tensor list, on the current stream.
Same functions and keywords as the CPU backend; arrays are CuPy arrays, or anything CuPy can view
without a copy (``__cuda_array_interface__``, or DLPack on a CUDA device: PyTorch, JAX, Numba).

Per step, the host work is kept to what changes, and the host never waits for the GPU:

* the device chunk table of a set of lists (chunk records and a row of pointers per list) is built
  once, keyed by every list's pointers but the grads'; new grads rewrite only their row, by an
  asynchronous copy from pinned memory, ordered on the stream (``_DeviceTable``);
* an optimizer's plan remembers the grads it checked last (``_core.SameObjects``, weak references):
  a step with the same CuPy arrays checks nothing again and runs no Python loop over the arrays;
* a list of the same array objects is checked once (the check is remembered through weak
  references, so a freed array is never mistaken for a new one at the same id)."""

from __future__ import annotations

import collections
import functools
import hashlib
import math
import os
import threading
import weakref
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .. import _core, get_include
from . import DLPACK_CUDA, refuse_overlaps
from . import is_cuda_array as backends_is_cuda

# Elements per chunk (a multiple of 4, so aligned tensors stay aligned chunk by chunk); one block
# walks one chunk. The size grows with the problem, from MIN_CHUNK to MAX_CHUNK, so that the grid has
# about CHUNKS_PER_SM chunks per multiprocessor (several waves of resident blocks: the per-chunk
# metadata loads amortize over a large chunk, a tail wave is short). FUSEDOPT_CUDA_CHUNK fixes it
# (benchmarks/bench_gpu.py --chunks sweeps it).
MIN_CHUNK, MAX_CHUNK, CHUNKS_PER_SM = 4096, 1 << 18, 16
THREADS = 256  # the kernels' block (kBlockThreads in multi_tensor.cuh, their __launch_bounds__)
# Blocks per multiprocessor for the kernels with one thread per chunk (norms, fills): enough to fill
# an H100 / A100. FUSEDOPT_CUDA_BLOCKS_PER_SM overrides it.
BLOCKS_PER_SM = 8
_SUPPORTED = ("float32", "float64")
# 16-bit storage (README, "Mixed precision"): CuPy has no bfloat16, so a uint16 array holds bfloat16
# bits. The numbers are the kernels' storage template arguments (fusedopt::DType's).
STORAGE = {"float32": 0, "uint16": 2, "float16": 3}


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


SOURCES = ("optimizers", "init", "reductions", "adafactor")  # fusedopt/cuda/<source>.cu


def kernel_source(source: str) -> str:
    """The text NVRTC compiles for fusedopt/cuda/<source>.cu."""
    path = os.path.join(os.path.dirname(os.path.dirname(__file__)), "cuda", f"{source}.cu")
    with open(path) as f:
        return f"// fusedopt headers {_headers_digest()}\n" + f.read()


def compile_options() -> Tuple[str, ...]:
    """NVRTC options: no implicit contraction (--fmad=false), so the bits equal the CPU build's."""
    return ("-std=c++17", "--fmad=false", f"-I{get_include()}")


@functools.lru_cache(maxsize=None)
def _rule(index: int) -> dict:
    return _core.rules()[index]


def step_kernel_name(rule: int, variant: int, dtype: str, kernel: str = "step") -> str:
    """The name expression of one instantiation of a kernel template of optimizers.cu: ``step`` (an
    elementwise rule), or a two-pass rule's ``first_pass`` and ``scaled_step``."""
    ctype = "float" if dtype == "float32" else "double"
    return f"fusedopt::cuda::{kernel}<fusedopt::rules::{_rule(rule)['cpp_name']}<{variant}u>, {ctype}>"


def kernels_of(rule: int, variant: int) -> Tuple[str, ...]:
    """The kernels one step of a variant launches, in order."""
    norms = _rule(rule)["norms"][variant]
    if norms < 0:
        return ("step",)
    return ("first_pass", "scaled_step") if norms > 0 else ("scaled_step",)


def _rule_kernel_names(rule: int) -> Tuple[str, ...]:
    return tuple(step_kernel_name(rule, v, t, kernel) for v in range(len(_rule(rule)["present"])) for t in _SUPPORTED
                 for kernel in kernels_of(rule, v))


def capturable_kernel_names(rule: int) -> Tuple[str, ...]:
    """A capturable step's kernels (scalars read from device memory): elementwise rules, every variant."""
    return tuple(step_kernel_name(rule, v, t, "step_from_device") for v in range(len(_rule(rule)["present"]))
                 for t in _SUPPORTED if kernels_of(rule, v) == ("step",))


def kernel_names(source: str) -> Tuple[str, ...]:
    """Every kernel of one source that this backend launches (for optimizers.cu: name expressions,
    every variant of every registered rule in both types)."""
    if source == "init":
        return tuple(FILL_KERNELS.values())
    if source == "reductions":
        return tuple(GRAD_NORM_KERNELS.values())
    if source == "adafactor":
        return tuple(f"adafactor_step_{t}" for t in _ADAFACTOR_TYPES.values())
    return tuple(name for rule in range(len(_core.rules()))
                 for name in _rule_kernel_names(rule) + capturable_kernel_names(rule)) + TRAFFIC_KERNELS


# Sources whose kernels are launched cooperatively (their grid waits for all its threads: cooperative_groups).
COOPERATIVE_SOURCES = ("adafactor",)


@functools.lru_cache(maxsize=None)
def _module(source: str, names: Tuple[str, ...]):
    cooperative = {"enable_cooperative_groups": True} if source in COOPERATIVE_SOURCES else {}
    if names:
        return _cupy().RawModule(code=kernel_source(source), options=compile_options(), name_expressions=names,
                                 **cooperative)
    return _cupy().RawModule(code=kernel_source(source), options=compile_options(), **cooperative)


# Benchmarks only: Adam's loads and stores through the step's walker, no math (optimizers.cu).
TRAFFIC_KERNELS = ("fusedopt::cuda::adam_traffic<float>", "fusedopt::cuda::adam_traffic<double>")


def adam_traffic_probe(params, grads, exp_avgs, exp_avg_sqs):
    """A callable that moves the bytes of an Adam step over these lists (4 reads, 3 writes per element)
    with the step's walker and chunk table and no math: the Adam step's ceiling (bench_gpu.py). It
    swaps the two state lists and adds the grads into the params."""
    lists = [("params", params), ("grads", grads), ("exp_avgs", exp_avgs), ("exp_avg_sqs", exp_avg_sqs)]
    dtype, infos = _check(lists)
    if dtype not in _SUPPORTED:
        raise TypeError(f"adam_traffic_probe: float32 or float64 lists, got {dtype}")
    name = TRAFFIC_KERNELS[0 if dtype == "float32" else 1]
    kernel = _module("optimizers", TRAFFIC_KERNELS).get_function(name)
    with _launch_lock:
        table = _device_table(infos)

    def probe():
        if table.n_chunks:
            kernel((table.n_chunks,), (THREADS,), table.args)

    return probe


def _step_kernel(rule: int, variant: int, dtype: str, kernel: str = "step"):
    """One rule's module holds all its variants in both types: compiled once, at its first launch (its
    capturable kernels in a module of their own, compiled when one is first launched)."""
    names = capturable_kernel_names(rule) if kernel == "step_from_device" else _rule_kernel_names(rule)
    return _module("optimizers", names).get_function(step_kernel_name(rule, variant, dtype, kernel))


def _fill_kernel(name: str):
    return _module("init", ()).get_function(name)


@functools.lru_cache(maxsize=None)
def _multiprocessors(device_id: int) -> int:
    return _cupy().cuda.Device(device_id).attributes["MultiProcessorCount"]


def _max_blocks(device_id: int) -> int:
    """The grid: enough blocks to fill every multiprocessor; the kernels stride over the rest."""
    return _multiprocessors(device_id) * blocks_per_sm()


def _device_id(array) -> int:
    return array.data.device_id


def _setting(variable: str, default: int, lowest: int, highest: int, multiple_of: int = 1) -> int:
    """An integer launch setting from the environment, or ValueError naming the variable."""
    text = os.environ.get(variable)
    if text is None:
        return default
    if not text.isdigit() or not lowest <= int(text) <= highest or int(text) % multiple_of:
        raise ValueError(f"{variable}: expected a multiple of {multiple_of} in [{lowest}, {highest}], got {text!r}")
    return int(text)


def chunk_size(total: int = 0, device_id: int = 0) -> int:
    """Elements per chunk of a step over ``total`` elements: FUSEDOPT_CUDA_CHUNK when set, else the
    power of two that gives about CHUNKS_PER_SM chunks per multiprocessor, within [MIN_CHUNK, MAX_CHUNK]."""
    fixed = _setting("FUSEDOPT_CUDA_CHUNK", 0, 4, 2**30, multiple_of=4)
    if fixed:
        return fixed
    wanted = -(-total // (CHUNKS_PER_SM * _multiprocessors(device_id))) if total > 0 else MIN_CHUNK
    return min(MAX_CHUNK, max(MIN_CHUNK, 1 << (wanted - 1).bit_length()))


def blocks_per_sm() -> int:
    return _setting("FUSEDOPT_CUDA_BLOCKS_PER_SM", BLOCKS_PER_SM, 1, 64)


# --- checks ---------------------------------------------------------------------------------------

class _ListInfo:
    """What the checks learned about one list (no arrays: the cache must not keep them alive)."""

    __slots__ = ("dtype", "name", "device", "shapes", "ptrs", "numel", "_extents")

    def __init__(self, dtype, device, shapes, ptrs):
        self.dtype, self.device, self.shapes, self.ptrs = dtype, device, shapes, ptrs
        self.name = dtype.name  # (NumPy computes dtype.name in Python, each time it is read)
        self.numel = tuple(map(math.prod, shapes))
        self._extents = None

    def extents(self) -> Tuple[np.ndarray, np.ndarray]:
        """Each array's first byte and end, as int64 arrays (device addresses fit)."""
        if self._extents is None:
            begins = np.array(self.ptrs, np.int64)
            self._extents = (begins, begins + np.array(self.numel, np.int64) * self.dtype.itemsize)
        return self._extents


def _refuse_overlaps(calls: Sequence[Sequence[Optional[_ListInfo]]], name) -> None:
    """ValueError naming two arrays whose bytes overlap, among the lists of every call (list 1 of a
    call is its grads: a grad may be exactly its own param). One vectorized pass when nothing
    overlaps (the common case: steps whose grads are new arrays); the named search only when
    something does. ``name(call, list, index)`` names an array."""
    begins, ends = [], []
    for infos in calls:
        for k, info in enumerate(infos):
            if info is None:
                continue
            b, e = info.extents()
            if k == 1:  # a grad that is exactly its own param overlaps what the param overlaps: checked there
                own = (b == infos[0].extents()[0]) & (e == infos[0].extents()[1])
                b, e = b[~own], e[~own]
            begins.append(b)
            ends.append(e)
    b, e = np.concatenate(begins), np.concatenate(ends)
    nonempty = e > b
    b, e = b[nonempty], e[nonempty]
    order = np.argsort(b, kind="stable")
    b, e = b[order], e[order]
    if b.size < 2 or not (b[1:] < np.maximum.accumulate(e)[:-1]).any():
        return
    refuse_overlaps([(ptr, ptr + n * info.dtype.itemsize, k, (c, i)) for c, infos in enumerate(calls)
                     for k, info in enumerate(infos) if info is not None
                     for i, (ptr, n) in enumerate(zip(info.ptrs, infos[0].numel))],
                    lambda k, ci: name(ci[0], k, ci[1]))


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
        if v.data.ptr % v.dtype.itemsize:
            raise ValueError(f"{name}[{i}]: array is not aligned to its dtype")
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


def _is_mixed(dtypes) -> bool:
    """Lists of float32 and 16-bit storage (uint16 = bfloat16 bits, float16), at least one 16-bit."""
    return all(d in STORAGE for d in dtypes) and any(d != "float32" for d in dtypes)


def _check(lists: Sequence[Tuple[str, object]]) -> Tuple[str, List[Optional[_ListInfo]]]:
    """Checks every array of every list (None: a list the options do not use) against params:
    same length, device and shapes, and one dtype (float32 or float64), or each list its own among
    float32, bfloat16 (uint16 bits) and float16. Returns (dtype name, "mixed" for the latter, and one
    _ListInfo per list)."""
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
            if info.name not in _SUPPORTED + tuple(STORAGE):
                raise TypeError(f"params[0]: dtype {info.dtype} is not supported; expected float32, float64, "
                                f"bfloat16 (as uint16 bits) or float16")
        else:
            first = infos[0]
            if info.dtype != first.dtype and not _is_mixed((first.name, info.name)):
                raise TypeError(f"{name}[0]: dtype {info.dtype} does not match params[0] dtype {first.dtype} "
                                "(float64 arrays mix with float64 only; float32, bfloat16 (uint16) and float16 "
                                "lists may mix)")
            if info.device != first.device:
                raise ValueError(f"{name}[0]: on device {info.device}, params[0] on device {first.device}")
            if info.shapes != first.shapes:
                i = next(i for i, (s, p) in enumerate(zip(info.shapes, first.shapes)) if s != p)
                raise ValueError(f"{name}[{i}]: shape {info.shapes[i]} does not match params[{i}] shape "
                                 f"{first.shapes[i]}")
        infos.append(info)
    _check_current_device(infos[0].device)
    _refuse_overlaps([infos], lambda c, k, i: f"{lists[k][0]}[{i}]")
    names = [info.name for info in infos if info is not None]
    return ("mixed" if _is_mixed(names) else names[0]), infos


def _check_current_device(device: int) -> None:
    """Kernels are compiled for, and launched on, the current device: the arrays must live there."""
    current = _cupy().cuda.runtime.getDevice()
    if device != current:
        raise ValueError(f"params[0]: on CUDA device {device}, but the current device is {current}; "
                         f"call inside `with cupy.cuda.Device({device}):`")


# --- chunk table and launch -----------------------------------------------------------------------

def build_chunk_table(ptrs_per_slot: Sequence[Sequence[int]], sizes: Sequence[int], chunk: int):
    """The chunk table as host arrays: (chunks int64 [n_chunks, 2], ptrs uint64 [slot * n_tensors + t]).
    Each tensor is cut into chunks of ``chunk`` elements from 0; a chunk's record is the kernels'
    ChunkInfo: its tensor (int32) and element count (int32) in the first word, its first element in
    the second."""
    sizes = np.asarray(sizes, np.int64).reshape(-1)
    per_tensor = (sizes + chunk - 1) // chunk
    tensor = np.repeat(np.arange(len(sizes), dtype=np.int64), per_tensor)
    first_chunk = np.cumsum(per_tensor) - per_tensor
    begin = (np.arange(len(tensor), dtype=np.int64) - np.repeat(first_chunk, per_tensor)) * chunk
    count = np.minimum(chunk, sizes[tensor] - begin)
    chunks = np.stack([tensor | (count << 32), begin], axis=1) if len(tensor) else np.zeros((0, 2), np.int64)
    ptrs = np.array(ptrs_per_slot, np.uint64).reshape(-1)
    return np.ascontiguousarray(chunks, np.int64), ptrs


class _Staging:
    """Pinned host buffers for asynchronous host-to-device copies. A buffer is reused only once the
    GPU has done the copy that read it (an event per copy, queried, never waited on), so staging new
    values never blocks the host; buffers are added as needed and dropped when many are idle."""

    def __init__(self):
        self._free: "collections.deque" = collections.deque()  # (buffer, capacity, event)
        self._lock = threading.Lock()

    def copy(self, values: np.ndarray, destination: int, stream) -> None:
        """values' bytes to device address ``destination``, queued on ``stream``."""
        cupy = _cupy()
        data = np.ascontiguousarray(values).view(np.uint8).reshape(-1)
        with self._lock:
            for _ in range(len(self._free)):
                buffer, capacity, event = self._free[0]
                if capacity >= data.size and event.done:
                    self._free.popleft()
                    break
                self._free.rotate(-1)
            else:
                capacity = max(256, 1 << (data.size - 1).bit_length())
                buffer, event = cupy.cuda.alloc_pinned_memory(capacity), cupy.cuda.Event(disable_timing=True)
            np.frombuffer(buffer, np.uint8, data.size)[...] = data
            cupy.cuda.runtime.memcpyAsync(destination, buffer.ptr, data.size, cupy.cuda.runtime.memcpyHostToDevice,
                                          stream.ptr)
            event.record(stream)
            if len(self._free) < 64:
                self._free.append((buffer, capacity, event))


_staging = _Staging()


class _DeviceTable:
    """The device chunk table of one set of lists, built once. Row ``moving`` (the grads) is the one
    list whose arrays change from step to step: ``point(row)`` rewrites it by an asynchronous copy on
    the current stream, after whatever launch last read it on another stream. ``args`` are the
    kernels' FUSEDOPT_CHUNK_PARAMS."""

    __slots__ = ("args", "n_chunks", "n_tensors", "ptrs", "moving", "row", "scratch", "_stream", "_event")

    def __init__(self, rows: Sequence[Tuple[int, ...]], sizes: Sequence[int], chunk: int, moving: int):
        chunks, ptrs = build_chunk_table(rows, sizes, chunk)
        cupy = _cupy()
        self.n_tensors, self.n_chunks = len(sizes), len(chunks)
        device_chunks, self.ptrs = cupy.asarray(chunks), cupy.asarray(ptrs)
        cupy.cuda.get_current_stream().synchronize()  # once per table: complete for a launch on any stream
        self.args = (device_chunks, self.ptrs, np.int32(self.n_tensors), np.int32(self.n_chunks))
        self.moving, self.row = moving, tuple(rows[moving])
        self.scratch = None  # a kernel's device scratch that goes with this table (norm sums, factors)
        self._stream, self._event = None, None

    def point(self, row: Tuple[int, ...], stream) -> None:
        """The moving row now holds ``row`` for launches queued on ``stream`` from here on."""
        self.order_after_last(stream)
        if row != self.row:
            if stream.is_capturing():
                raise RuntimeError("a step captured in a CUDA graph must use the grads of the eager step before it "
                                   "(their addresses are in the graph's table): run one step with these grads first")
            _staging.copy(np.asarray(row, np.uint64), self.ptrs.data.ptr + 8 * self.moving * self.n_tensors, stream)
        self.row = row  # this very tuple: a plan's steady step checks it is still the one it pointed

    def order_after_last(self, stream) -> None:
        """Launches on ``stream`` wait for the last launch that read this table on another stream."""
        if self._stream is not None and self._stream != stream.ptr and not self._event.done:
            stream.wait_event(self._event)

    def launched(self, stream, event) -> None:
        """A launch reading this table was queued on ``stream``; ``event`` follows it."""
        self._stream, self._event = stream.ptr, event


_table_cache: Dict[tuple, _DeviceTable] = {}


def _device_table(infos: Sequence[_ListInfo], extra_rows: Sequence[Tuple[int, ...]] = (), moving: int = 1,
                  chunk: Optional[int] = None) -> _DeviceTable:
    """The device table for these lists (and ``extra_rows`` of per-tensor values after them: a 16-bit
    step's master copies and tensor ids), built once per pointers and sizes of every list but list
    ``moving`` (the grads), whose row is pointed at the given arrays. ``chunk``: elements per chunk
    (None: chunk_size() for the total)."""
    rows = [info.ptrs for info in infos] + [tuple(r) for r in extra_rows]
    sizes = infos[0].numel
    if chunk is None:
        chunk = chunk_size(sum(sizes), infos[0].device)
    return _device_table_of_rows(rows, sizes, infos[0].shapes, chunk, moving)


def _device_table_of_rows(rows, sizes, shapes, chunk: int, moving: int) -> _DeviceTable:
    """_device_table over rows of pointers given directly (0 for an array a tensor does not have)."""
    key = (chunk, moving, shapes) + tuple(r for k, r in enumerate(rows) if k != moving)
    table = _table_cache.get(key)
    if table is None:
        if len(_table_cache) >= 64:  # a bounded cache: training loops reuse one or two lists
            _table_cache.clear()
        table = _table_cache[key] = _DeviceTable(rows, sizes, chunk, moving)
    table.point(rows[moving], _cupy().cuda.get_current_stream())
    return table


@functools.lru_cache(maxsize=None)
def _scalars_dtype(rule: int, dtype: str) -> np.dtype:
    fields = [f.strip() for f in _rule(rule)["scalars"].split(",")]
    return np.dtype([(f, dtype) for f in fields], align=True)


def _scalars_struct(rule: int, dtype: str, scalars: bytes):
    """The rule's Scalars<T> as one structured NumPy scalar: the kernel's by-value argument (float32
    fields rounded from the spec's float64 values, as the CPU binding rounds them)."""
    struct = _scalars_dtype(rule, dtype)
    values = np.frombuffer(scalars, np.float64)
    if values.size != len(struct.names):
        raise ValueError(f"{_rule(rule)['name']}: expected {len(struct.names)} scalars, got {values.size}")
    return values.astype(dtype).view(struct)[0]


def _check_variant(rule: int, variant: int, n_lists: int) -> None:
    present = _rule(rule)["present"]
    if not 0 <= variant < len(present) or bin(present[variant]).count("1") != n_lists:
        raise ValueError(f"{_rule(rule)['name']}: variant {variant} does not update {n_lists} lists")


NORM_CHUNK = 4096  # elements per partial norm sum: the CPU's (cpu/apply.hpp, kNormChunk), for the same bits


def _norm_table(infos: Sequence[_ListInfo], dtype: str, moving: int = 1, extra_rows=()) -> _DeviceTable:
    """A table cut in the CPU's norm chunks (one thread per chunk), with its device scratch built once:
    each tensor's first chunk, the chunk sums, per-tensor counters at zero, and (for a two-pass rule)
    each tensor's factor, in ``table.scratch``. ``dtype``: the factors' (float32 for 16-bit storage)."""
    table = _device_table(infos, extra_rows, moving=moving, chunk=NORM_CHUNK)
    if table.scratch is None:
        cupy = _cupy()
        sizes = np.asarray(infos[0].numel, np.int64)
        first_chunk = np.concatenate([[0], np.cumsum((sizes + NORM_CHUNK - 1) // NORM_CHUNK)]).astype(np.int32)
        table.scratch = (cupy.asarray(first_chunk), cupy.empty(2 * max(table.n_chunks, 1), np.float64),
                         cupy.zeros(len(sizes), np.uint32), cupy.ones(len(sizes), dtype))
        cupy.cuda.get_current_stream().synchronize()  # once per table, as the table itself
    return table


def _norm_grid(table: _DeviceTable) -> int:
    return min(-(-table.n_chunks // THREADS), _max_blocks(_device_id(table.ptrs)))


def _step_tables(rule: int, variant: int, infos: Sequence[_ListInfo], extra_rows=()) -> Tuple[_DeviceTable, ...]:
    """The device tables one step of a variant reads: its chunk table, and a two-pass rule's norm table."""
    table = _device_table(infos, extra_rows)
    if "first_pass" in kernels_of(rule, variant):  # (16-bit storage: extra rows, float32 factors)
        return table, _norm_table(infos, "float32" if extra_rows else infos[0].name, extra_rows=extra_rows)
    return (table,)


def _launch(rule: int, variant: int, dtype: str, tables, scalars) -> None:
    """One step over the tables of _step_tables(): one launch (two for a two-pass rule's norms); one block per
    chunk. ``scalars``: the rule's Scalars struct, or a device pointer to it (a capturable step)."""
    table = tables[0]
    if table.n_chunks == 0:
        return
    kernels = kernels_of(rule, variant)
    if kernels == ("step",):
        kernel = "step_from_device" if isinstance(scalars, _ScalarsOnDevice) else "step"
        _step_kernel(rule, variant, dtype, kernel)((table.n_chunks,), (THREADS,), (*table.args, scalars.value))
        return
    factors = None
    if "first_pass" in kernels:
        norms = tables[1]
        first_chunk, sums, done, factors = norms.scratch
        _step_kernel(rule, variant, dtype, "first_pass")(
            (_norm_grid(norms),), (THREADS,), (*norms.args, first_chunk, sums, done, factors, scalars.value))
    else:  # a variant without norms: factor 1
        factors = _device_table_ones(table, dtype)
    _step_kernel(rule, variant, dtype, "scaled_step")((table.n_chunks,), (THREADS,), (*table.args, factors, scalars.value))


def _device_table_ones(table: _DeviceTable, dtype: str):
    if table.scratch is None:
        table.scratch = _cupy().ones(table.n_tensors, dtype)
    return table.scratch


class _ScalarsByValue:
    """A rule's Scalars struct, passed by value."""
    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value


class _ScalarsOnDevice:
    """A device pointer to a rule's Scalars struct, which the host filled (a capturable step)."""
    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value


class _InFlight:
    """Launches that may still run, each with the arrays it reads and writes: a launch returns before
    the GPU has run it, and CuPy's pool hands a freed block at once to the next allocation on the
    stream that allocated it, which need not be the launch's stream. Released when the GPU reports it
    done (an event per step, queried, never waited on). A step captured in a CUDA graph holds nothing:
    it runs when the graph is launched, which orders it as the user orders the graph."""

    def __init__(self):
        self._held: "collections.deque" = collections.deque()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._held)

    def hold(self, arrays, stream, tables=(), capturing: Optional[bool] = None) -> None:
        if stream.is_capturing() if capturing is None else capturing:
            return
        event = _cupy().cuda.Event(disable_timing=True)
        event.record(stream)
        for table in tables:
            table.launched(stream, event)
        with self._lock:
            while self._held and self._held[0][0].done:
                self._held.popleft()
            self._held.append((event, arrays))


_in_flight = _InFlight()


def _hold_until_done(arrays) -> None:
    _in_flight.hold(arrays, _cupy().cuda.get_current_stream())


# --- the optimizer step and plan (the interface of fusedopt.backends) ------------------------------

def mixed_kernel_name(rule: int, variant: int, storage: Sequence[int], master: bool, stochastic: bool) -> str:
    """The name expression of a 16-bit step (optimizers.cu ``mixed_step``): storage per list in use."""
    flags = f"{str(master).lower()}, {str(stochastic).lower()}"
    return (f"fusedopt::cuda::mixed_step<fusedopt::rules::{_rule(rule)['cpp_name']}<{variant}u>, {flags}, "
            f"{', '.join(map(str, storage))}>")


def mixed_first_pass_name(rule: int, variant: int, storage: Sequence[int], master: bool) -> str:
    """A two-pass rule's first pass over 16-bit storage (optimizers.cu ``first_pass_mixed``)."""
    return (f"fusedopt::cuda::first_pass_mixed<fusedopt::rules::{_rule(rule)['cpp_name']}<{variant}u>, "
            f"{str(master).lower()}, {', '.join(map(str, storage))}>")


def mixed_scaled_step_name(rule: int, variant: int, storage: Sequence[int], master: bool, stochastic: bool) -> str:
    """A two-pass rule's update over 16-bit storage (optimizers.cu ``scaled_step_mixed``)."""
    return mixed_kernel_name(rule, variant, storage, master, stochastic).replace("::mixed_step<", "::scaled_step_mixed<")


def _check_precision(rule: int, infos, master_info, stochastic: bool, names) -> None:
    """What a 16-bit step may not be asked for, as the CPU binding refuses it (before anything runs)."""
    dtypes = [info.name for info in infos]
    if master_info is not None:
        if master_info.name != "float32":
            raise TypeError(f"master_params[0]: dtype {master_info.dtype}; a master copy is float32")
        if dtypes[0] not in ("uint16", "float16"):
            raise ValueError(f"master weights are float32 copies of bfloat16 or float16 params; {names[0]}[0] is "
                             f"{dtypes[0]}")
        if master_info.shapes != infos[0].shapes:
            i = next(i for i, (s, p) in enumerate(zip(master_info.shapes, infos[0].shapes)) if s != p)
            raise ValueError(f"master_params[{i}]: shape {master_info.shapes[i]} does not match params[{i}] shape "
                             f"{infos[0].shapes[i]}")
    if stochastic:
        for k, d in enumerate(dtypes):
            if k != 1 and d == "float16":
                raise ValueError(f"stochastic rounding is for bfloat16 arrays; {names[k]}[0] is float16 (round it to "
                                 "nearest, or store it in bfloat16)")


def _mixed_rows(master_info, ids) -> list:
    return ([master_info.ptrs] if master_info is not None else []) + [tuple(ids)]


def _launch_mixed(rule: int, variant: int, storage: Tuple[int, ...], master: bool, tables, rounding, scalars) -> None:
    """One 16-bit step: one launch, the table holding the master copies and the tensor ids after the lists."""
    table = tables[0]
    if table.n_chunks == 0:
        return
    stochastic = rounding is not None
    seed, step = np.uint64(rounding[0] if stochastic else 0), np.uint64(rounding[1] if stochastic else 0)
    kernels = kernels_of(rule, variant)
    if kernels == ("step",):
        name = mixed_kernel_name(rule, variant, storage, master, stochastic)
        _module("optimizers", (name,)).get_function(name)((table.n_chunks,), (THREADS,),
                                                          (*table.args, seed, step, scalars.value))
        return
    if "first_pass" in kernels:
        norms = tables[1]
        first_chunk, sums, done, factors = norms.scratch
        name = mixed_first_pass_name(rule, variant, storage, master)
        _module("optimizers", (name,)).get_function(name)(
            (_norm_grid(norms),), (THREADS,), (*norms.args, first_chunk, sums, done, factors, scalars.value))
    else:  # a variant without norms: factor 1
        factors = _device_table_ones(table, "float32")
    name = mixed_scaled_step_name(rule, variant, storage, master, stochastic)
    _module("optimizers", (name,)).get_function(name)((table.n_chunks,), (THREADS,),
                                                      (*table.args, factors, seed, step, scalars.value))


def step(spec, variant: int, names, lists, scalars: bytes, master=None, rounding=None) -> None:
    _check_variant(spec.rule_index, variant, len(lists))
    checked = list(zip(names, lists)) + ([("master_params", master)] if master is not None else [])
    dtype, infos = _check(checked)
    master_info = infos.pop() if master is not None else None
    with _launch_lock:
        if dtype == "mixed" or master is not None:  # (float32 or float64 lists round nothing: rounding is moot)
            _check_precision(spec.rule_index, infos, master_info, rounding is not None, names)
            tables = _step_tables(spec.rule_index, variant, infos, _mixed_rows(master_info, range(len(lists[0]))))
            _launch_mixed(spec.rule_index, variant, tuple(STORAGE[info.name] for info in infos),
                          master is not None, tables, rounding,
                          _ScalarsByValue(_scalars_struct(spec.rule_index, "float32", scalars)))
        else:
            tables = _step_tables(spec.rule_index, variant, infos)
            _launch(spec.rule_index, variant, dtype, tables,
                    _ScalarsByValue(_scalars_struct(spec.rule_index, dtype, scalars)))
        _in_flight.hold(tuple(a for arrays in lists for a in arrays) + tuple(master or ()),
                        _cupy().cuda.get_current_stream(), tables)


# One launch at a time: a table's grads row must hold this launch's grads until it is queued.
_launch_lock = threading.RLock()


def _renamed(error: Exception, names: Dict[str, Sequence[str]]) -> Exception:
    """The same error, naming arrays as the user knows them (list name -> one name per array)."""
    import re

    def user_name(m):
        listed = names.get(m.group(1))
        return listed[int(m.group(2))] if listed is not None and int(m.group(2)) < len(listed) else m.group(0)

    return type(error)(re.sub(r"(\w+)\[(\d+)\]", user_name, str(error)))


class _CallLaunch:
    """One plan call's launch, resolved for one set of arrays: the tables it reads and how to launch.
    A steady step (the same grads again) runs it with new scalars and nothing else."""

    __slots__ = ("rule", "variant", "dtype", "tables", "rows", "storage", "master", "scalars_dtype", "device_scalars")

    def __init__(self, rule, variant, dtype, tables, storage=None, master=False, device_scalars=None):
        self.rule, self.variant, self.dtype, self.tables = rule, variant, dtype, tables
        self.rows = tuple(table.row for table in tables)
        self.storage, self.master = storage, master
        self.scalars_dtype = "float32" if storage is not None else dtype
        self.device_scalars = device_scalars

    def current(self) -> bool:
        """The tables' grads rows still point at this launch's grads (no other call re-pointed them)."""
        return all(table.row is row for table, row in zip(self.tables, self.rows))

    def run(self, packed: bytes, rounding, stream, capturing: bool = False) -> None:
        struct = _scalars_struct(self.rule, self.scalars_dtype, packed)
        if not capturing:  # (a capture may not query events; the user orders a graph's launches)
            for table in self.tables:
                table.order_after_last(stream)
        if self.storage is not None:
            _launch_mixed(self.rule, self.variant, self.storage, self.master, self.tables, rounding,
                          _ScalarsByValue(struct))
        elif self.device_scalars is not None:
            self.device_scalars.upload(struct, stream, capturing)
            _launch(self.rule, self.variant, self.dtype, self.tables, _ScalarsOnDevice(self.device_scalars.pointer))
        else:
            _launch(self.rule, self.variant, self.dtype, self.tables, _ScalarsByValue(struct))


class _DeviceScalars:
    """A capturable call's Scalars struct in device memory: filled from pinned memory (asynchronously,
    on the stream) with the values the host computed, before the launch that reads it. A graph that
    captured the launch reads it at each replay: ``upload`` before each ``graph.launch()``."""

    __slots__ = ("buffer", "pointer")

    def __init__(self, nbytes: int):
        self.buffer = _cupy().empty(max(nbytes, 8), np.uint8)
        self.pointer = np.uint64(self.buffer.data.ptr)

    def upload(self, struct, stream, capturing: bool = False) -> None:
        if not capturing:  # a captured step reads the buffer; the host fills it before each replay
            _staging.copy(np.frombuffer(struct.tobytes(), np.uint8), int(self.pointer), stream)


class Plan:
    """An optimizer's params and state on the GPU, cut into calls as fusedopt._core.Plan: the lists
    are kept and checked once, and their device tables built once; a step checks the gradients and
    points the tables' grads rows at them (an asynchronous copy, no synchronize), then launches one
    kernel per call. A step with the same CuPy arrays as grads as the last one checks nothing again
    and runs no Python loop over the arrays (``_core.SameObjects``).

    ``capturable``: every call's kernel reads its scalars from device memory, so that a step can be
    captured in a CUDA graph and replayed (``upload_scalars`` before each replay)."""

    def __init__(self, calls, n_params: int, capturable: bool = False):
        self.n_params = n_params
        self.capturable = capturable
        self._calls = []
        scalars_dtypes = []
        for rule, params, buffers, indices, names, buffer_names, *master in calls:
            master, master_names = (master + [None, None])[:2]
            lists = [("params", list(params)), ("grads", list(params))]
            lists += [(f"buffers{k}", list(b)) for k, b in enumerate(buffers)]
            user = {"params": names, **{f"buffers{k}": n for k, n in enumerate(buffer_names)}}
            if master is not None:
                lists.append(("master_params", list(master)))
                user["master_params"] = master_names
            try:
                dtype, _ = _check(lists)
            except (TypeError, ValueError) as e:
                raise _renamed(e, user) from None
            if capturable:
                _check_capturable(rule, dtype, master is not None)
            user["grads"] = [f"grads[{i}]" for i in indices]
            self._calls.append((rule, lists, list(indices), user, master is not None))
            scalars_dtypes.append(dtype if dtype in _SUPPORTED else "float32")
        self.n_calls = len(self._calls)
        self._device_scalars = [_DeviceScalars(_scalars_dtype(rule, dtype).itemsize) if capturable else None
                                for (rule, *_), dtype in zip(self._calls, scalars_dtypes)]
        self._scalars_dtypes = scalars_dtypes
        self._seen = _core.SameObjects()
        self._steady: Optional[Tuple[tuple, list]] = None  # (variants, launches) of the last step
        self._captured_variants: Optional[tuple] = None

    def step(self, grads, variants, scalars, rounding=None) -> bool:
        variants = tuple(variants)
        stream = _cupy().cuda.get_current_stream()
        capturing = stream.is_capturing()
        with _launch_lock:
            steady = self._steady
            same = (steady is not None and self._seen.same(grads) and all(launch.current() for launch in steady[1]))
            if same and steady[0] == variants:
                launches = steady[1]  # the same CuPy arrays: checked, and already in the tables
            elif capturing and not same:  # (other variants over the same arrays need no device work)
                raise RuntimeError("a step captured in a CUDA graph must use the same grads arrays (CuPy arrays) as "
                                   "the eager step before it: their addresses are in the device table")
            else:
                launches = self._prepare(grads, variants, rounding)
                if launches is None:
                    return False
            if capturing:
                if not self.capturable:
                    raise RuntimeError("this optimizer's kernels take their scalars by value, so a captured step "
                                       "would replay the captured step's scalars: make it with capturable=True")
                self._captured_variants = variants
            for c, launch in enumerate(launches):
                launch.run(scalars[c], None if rounding is None else tuple(rounding[c]), stream, capturing)
            if not capturing:
                _in_flight.hold((self, tuple(grads)), stream, [t for launch in launches for t in launch.tables], False)
        return True

    def upload_scalars(self, variants, scalars) -> None:
        """Fills every call's device scalars for the next replay of a captured step, on the current
        stream (asynchronously, from pinned memory). The variants must be the captured ones."""
        if not self.capturable:
            raise RuntimeError("this plan is not capturable")
        if self._captured_variants is None:
            raise RuntimeError("no step of this optimizer was captured: capture one (cupy.cuda.Stream.begin_capture) "
                               "before replaying it")
        if tuple(variants) != self._captured_variants:
            raise RuntimeError("the options changed since the step was captured (its kernel is another variant): "
                               "capture the step again")
        stream = _cupy().cuda.get_current_stream()
        if stream.is_capturing():
            raise RuntimeError("upload_scalars fills the scalars for a replay: call it outside the capture")
        for (rule, *_), device_scalars, dtype, packed in zip(self._calls, self._device_scalars, self._scalars_dtypes,
                                                             scalars):
            device_scalars.upload(_scalars_struct(rule, dtype, packed), stream)

    def _prepare(self, grads, variants, rounding):
        """Checks the grads (everything else was checked when the plan was made), points the tables at
        them and returns each call's launch; None when a grad of the plan is None."""
        if not isinstance(grads, (list, tuple)):
            raise TypeError(f"grads: expected a list of arrays, got {type(grads).__name__}")
        if len(grads) != self.n_params:
            raise ValueError(f"grads: expected {self.n_params} arrays (one per param, None to skip one), got {len(grads)}")
        if any(grads[i] is None for _, _, indices, _, _ in self._calls for i in indices):
            return None
        checked_calls = []
        for c, ((rule, lists, indices, user, has_master), variant) in enumerate(zip(self._calls, variants)):
            _check_variant(rule, variant, len(lists) - has_master)
            checked = list(lists)
            checked[1] = ("grads", [grads[i] for i in indices])
            try:
                dtype, infos = _check(checked)
                if infos[1].dtype != infos[0].dtype:  # as in torch, a grad has its param's dtype
                    raise TypeError(f"grads[0]: dtype {infos[1].dtype} does not match params[0] dtype {infos[0].dtype}")
                master_info = infos[-1] if has_master else None
                if dtype == "mixed" or has_master:
                    _check_precision(rule, infos[:len(infos) - has_master], master_info, rounding is not None,
                                     [name for name, _ in lists])
            except (TypeError, ValueError) as e:
                raise _renamed(e, user) from None
            checked_calls.append((rule, variant, dtype, infos, master_info, indices, has_master))
        if len(checked_calls) > 1:  # across calls too (each call's own arrays were checked by _check)
            _refuse_overlaps([call[3] for call in checked_calls],
                             lambda c, k, i: self._calls[c][3][self._calls[c][1][k][0]][i])
        launches = []
        with _launch_lock:
            for (rule, variant, dtype, infos, master_info, indices, has_master), device_scalars in zip(
                    checked_calls, self._device_scalars):
                if dtype == "mixed" or has_master:
                    lists = infos[:len(infos) - has_master]
                    launches.append(_CallLaunch(rule, variant, dtype, _step_tables(rule, variant, lists,
                                                                              _mixed_rows(master_info, indices)),
                                                tuple(STORAGE[info.name] for info in lists), has_master))
                else:
                    launches.append(_CallLaunch(rule, variant, dtype, _step_tables(rule, variant, infos),
                                                device_scalars=device_scalars))
        if all(type(g) is _cupy().ndarray for g in grads):  # another framework's tensor can be re-pointed
            self._seen.remember(grads)
            self._steady = (variants, launches)
        else:
            self._seen.forget()
            self._steady = None
        return launches


def _check_capturable(rule: int, dtype: str, has_master: bool) -> None:
    """A capturable step is one launch of an elementwise rule over float32 or float64 lists."""
    if dtype not in _SUPPORTED or has_master:
        storage = "16-bit" if dtype == "mixed" else dtype
        raise NotImplementedError(f"capturable=True: {storage} storage{' with master weights' if has_master else ''} "
                                  "has no capturable kernel yet (float32 and float64 do)")
    if kernels_of(rule, 0) != ("step",):
        raise NotImplementedError(f"capturable=True: {_rule(rule)['name']} (two passes over memory) has no "
                                  "capturable kernel yet")


def capturing() -> bool:
    """Whether the current stream is capturing a CUDA graph."""
    return _cupy().cuda.get_current_stream().is_capturing()


def check_param(p, where: str) -> None:
    v = as_cupy(where, p)  # a view, to read dtype and flags the same way for every framework
    if v.dtype.name not in _SUPPORTED + ("float16", "uint16"):
        raise TypeError(f"{where}: dtype {v.dtype} is not supported; expected float32, float64, float16 or "
                        "bfloat16 (as uint16 bits)")
    if not v.flags.c_contiguous:
        raise ValueError(f"{where}: array is not C-contiguous; fusedopt updates in place and never copies")
    if v.data.ptr % v.dtype.itemsize:
        raise ValueError(f"{where}: array is not aligned to its dtype")


def memory_extent(p):
    """(address space, first byte, end) of a C-contiguous CUDA array (unified addressing: one space
    per device is enough)."""
    v = as_cupy("params", p)
    return ("cuda", v.data.device_id), v.data.ptr, v.data.ptr + v.nbytes


def dtype_name(p) -> str:
    """The dtype's name; a uint16 array is bfloat16 bits (CuPy has no bfloat16)."""
    name = as_cupy("params", p).dtype.name
    return "bfloat16" if name == "uint16" else name


def bfloat16_bits(values) -> np.ndarray:
    """float32 values rounded to nearest even bfloat16, as uint16 bits (rules/storage.hpp's
    to_bfloat16_bits: a NaN stays a quiet NaN)."""
    x = np.ascontiguousarray(values, np.float32).view(np.uint32)
    nearest = (x + np.uint32(0x7FFF) + ((x >> 16) & np.uint32(1))) >> 16
    return np.where((x & np.uint32(0x7FFFFFFF)) > np.uint32(0x7F800000), (x >> 16) | np.uint32(0x40),
                    nearest).astype(np.uint16)


def _storage(name: str) -> np.dtype:
    return np.dtype(np.uint16 if name == "bfloat16" else name)


def full_like(p, value, dtype=None, slot=None):
    """An array shaped like ``p`` filled with ``value``, of dtype name ``dtype`` (default: p's;
    bfloat16: its uint16 bits). ``slot`` is the CPU's placement hint, unused here."""
    view = as_cupy("params", p)
    name = dtype or dtype_name(p)
    fill = bfloat16_bits(value).item() if name == "bfloat16" else value
    with _cupy().cuda.Device(view.data.device_id):
        return _cupy().full(view.shape, fill, _storage(name))


def zeros_like_shape(p, shape):
    """Zeros of ``shape`` with the dtype and device of param ``p`` (a state buffer not shaped like its param)."""
    cupy = _cupy()
    view = as_cupy("params", p)
    with cupy.cuda.Device(view.data.device_id):
        return cupy.zeros(shape, view.dtype)


def copy_like(value, p, dtype=None, slot=None):
    """A C-contiguous copy of saved state ``value`` (host or device) with the device of param ``p``
    and dtype name ``dtype`` (default: p's). bfloat16 values (a CuPy uint16 array, a NumPy bfloat16
    one) are read as such; a bfloat16 target gets uint16 bits, rounded to nearest from other types.
    Converted on the host: state is made or loaded once, not every step. ``slot``: unused (the CPU's
    placement hint)."""
    cupy = _cupy()
    view = as_cupy("params", p)
    name = dtype or dtype_name(p)
    if backends_is_cuda(value):
        host = as_cupy("state", value).get()
        bits = host if host.dtype == np.uint16 else None
    else:
        host = np.asarray(value)
        bits = host.view(np.uint16) if host.dtype.name == "bfloat16" else None
    if bits is not None and name == "bfloat16":
        result = bits
    else:
        values = (bits.astype(np.uint32) << 16).view(np.float32) if bits is not None else host
        result = bfloat16_bits(values) if name == "bfloat16" else values.astype(name)
    with cupy.cuda.Device(view.data.device_id):
        return cupy.array(np.ascontiguousarray(result), copy=True)


def to_host(value):
    """A CUDA array's values on the host; uint16 (bfloat16 bits) as an ``ml_dtypes.bfloat16`` array."""
    host = as_cupy("state_dict", value).get()
    if host.dtype != np.uint16:
        return host
    try:
        import ml_dtypes
    except ImportError:
        raise ImportError("a bfloat16 CUDA array (uint16 bits) copied to the host needs ml_dtypes for NumPy's "
                          "bfloat16: pip install ml_dtypes") from None
    return host.view(ml_dtypes.bfloat16)


# --- Adafactor (fusedopt/cuda/adafactor.cu) -----------------------------------------------------------

_ADAFACTOR_NAMES = ("params", "grads", "row_vars", "col_vars", "variances")
_ADAFACTOR_FIELDS = 9  # rules::AdafactorScalars
# the params' dtype -> the kernels' suffix (uint16: bfloat16 bits); 16-bit types compute in float32
_ADAFACTOR_TYPES = {"float32": "float32", "float64": "float64", "uint16": "bfloat16", "float16": "float16"}
# cpu/adafactor.hpp's tiles: the same cuts, so that the same sums are taken in the same order
_TILE_COLS, _TILE_ELEMENTS, _VECTOR_TILE, _LANES = 1024, 65536, 16384, 16


def _adafactor_shape(shape) -> Tuple[int, int, int, bool]:
    """(batches, rows, cols, factored) of a param, as the CPU binding sees it."""
    if len(shape) >= 2:
        rows, cols = shape[-2], shape[-1]
        return (0 if rows * cols == 0 else math.prod(shape) // (rows * cols)), rows, cols, True
    return 1, 1, math.prod(shape), False


class _AdafactorPlan:
    """The tiles, work lists and device scratch of one set of Adafactor arrays (their shapes and dtype),
    built once: the kernels' TensorInfo and TileInfo records, and the (tile, row), (tile, column),
    (tensor, batch, row), (tensor, batch, column) and (tensor, batch) items of the passes."""

    def __init__(self, shapes, dtype: str):
        cupy = _cupy()
        tensors, tiles, first_tile = [], [], [0]
        row_part = col_part = scale_at = 0
        row_items, col_items, row_factor_items, col_factor_items, matrix_items = [], [], [], [], []
        for t, shape in enumerate(shapes):
            batches, rows, cols, factored = _adafactor_shape(shape)
            tile_cols = min(cols, _TILE_COLS) if factored else _VECTOR_TILE
            tile_rows = max(_TILE_ELEMENTS // tile_cols, 1) if factored and tile_cols > 0 else 1
            row_blocks = -(-rows // tile_rows) if tile_rows > 0 else 0
            col_blocks = -(-cols // tile_cols) if tile_cols > 0 else 0
            tensors.append((batches, rows, cols, row_part, col_part, row_blocks, col_blocks, scale_at))
            if batches * rows * cols:
                if factored:
                    row_part += batches * col_blocks * rows
                    col_part += batches * row_blocks * cols
                    scale_at += batches * (rows + cols + 1)  # each row's, each column's, each matrix's floor
                    for b in range(batches):
                        matrix_items.append((t, b))
                        row_factor_items.append(np.stack([np.full(rows, t), np.full(rows, b), np.arange(rows)], 1))
                        col_factor_items.append(np.stack([np.full(cols, t), np.full(cols, b), np.arange(cols)], 1))
                for b in range(batches):
                    for rb in range(row_blocks):
                        for cb in range(col_blocks):
                            row0, col0 = rb * tile_rows, cb * tile_cols
                            n_rows, n_cols = min(tile_rows, rows - row0), min(tile_cols, cols - col0)
                            k = len(tiles)
                            tiles.append((t, b, row0, n_rows, col0, n_cols, rb, cb))
                            if factored:
                                row_items.append(np.stack([np.full(n_rows, k), np.arange(row0, row0 + n_rows)], 1))
                                col_items.append(np.stack([np.full(n_cols, k), np.arange(n_cols)], 1))
            first_tile.append(len(tiles))

        def device(items, width):
            host = np.concatenate(items).astype(np.int64) if items else np.zeros((0, width), np.int64)
            return cupy.asarray(np.ascontiguousarray(host.reshape(-1, width))), len(host)

        self.tensors = cupy.asarray(np.array(tensors, np.int64).reshape(-1, 8))
        self.tiles, self.n_tiles = device([np.array(tiles, np.int64).reshape(-1, 8)], 8)
        self.first_tile = cupy.asarray(np.array(first_tile, np.int64))
        self.row_items, self.n_row_items = device(row_items, 2)
        self.col_items, self.n_col_items = device(col_items, 2)
        self.row_factor_items, self.n_row_factor_items = device(row_factor_items, 3)
        self.col_factor_items, self.n_col_factor_items = device(col_factor_items, 3)
        self.matrix_items, self.n_matrices = device([np.array(matrix_items, np.int64).reshape(-1, 2)], 2)
        self.n_tensors = len(shapes)
        self.p_lanes = cupy.zeros(max(1, self.n_tiles * _LANES), np.float64)
        self.u_lanes = cupy.zeros(max(1, self.n_tiles * _LANES), np.float64)
        self.row_part = cupy.empty(max(1, row_part), np.float64)
        self.col_part = cupy.empty(max(1, col_part), np.float64)
        self.scales = cupy.empty(max(1, scale_at), dtype)
        self.steps = cupy.empty(max(1, self.n_tensors), dtype)
        self.scalars = cupy.empty(max(1, self.n_tensors * _ADAFACTOR_FIELDS), np.float64)
        self.launches: Dict[str, tuple] = {}  # _adafactor_launches': the kernel's suffix -> its launch
        cupy.cuda.get_current_stream().synchronize()  # once per plan, as the tables


def _adafactor_scalars(scalars, n: int) -> np.ndarray:
    """One set of the rule's fields for every param (bytes), or one per param (a list of bytes)."""
    given = list(scalars) if isinstance(scalars, (list, tuple)) else [scalars] * n
    if len(given) != n:
        raise ValueError(f"scalars: expected {n} entries (one per param), got {len(given)}")
    for s in given:
        if not isinstance(s, bytes):
            raise TypeError("adafactor: scalars must be bytes (the rule's fields as doubles)")
        if len(s) != 8 * _ADAFACTOR_FIELDS:
            raise ValueError(f"adafactor: expected {_ADAFACTOR_FIELDS} scalars, got {len(s) // 8}")
    return np.frombuffer(b"".join(given), np.float64)


def _adafactor_state(name: str, i: int, a, expected, what: str, param_text: str, dtype, device):
    """The pointer of state entry ``name[i]`` (0 where the param has none), checked as the CPU binding
    checks it."""
    if expected is None:
        if a is not None:
            raise ValueError(f"{name}[{i}]: expected None, {param_text} has {what}")
        return 0, None
    if a is None:
        raise ValueError(f"{name}[{i}]: required for {param_text} (got None)")
    v = _adafactor_array(name, i, a, dtype, device)
    if tuple(v.shape) != tuple(expected):
        raise ValueError(f"{name}[{i}]: shape {tuple(v.shape)} is not {tuple(expected)}, {what} of {param_text}")
    return v.data.ptr, v.nbytes


def _adafactor_array(name: str, i: int, a, dtype, device):
    v = as_cupy(f"{name}[{i}]", a)
    if dtype is not None and v.dtype != dtype:
        raise TypeError(f"{name}[{i}]: dtype {v.dtype} does not match params[0] dtype {dtype}")
    if v.data.device_id != device and device is not None:
        raise ValueError(f"{name}[{i}]: on device {v.data.device_id}, params[0] on device {device}")
    if not v.flags.c_contiguous:
        raise ValueError(f"{name}[{i}]: array is not C-contiguous; fusedopt updates in place and never copies")
    if v.data.ptr % v.dtype.itemsize:
        raise ValueError(f"{name}[{i}]: array is not aligned to its dtype")
    return v


def adafactor_step(params, grads, row_vars, col_vars, variances, scalars) -> None:
    """One Adafactor step on CUDA arrays, the CPU binding's (fusedopt._core.adafactor_step) checks and
    bits: everything is checked before anything is written, then adafactor.cu's one cooperative launch
    on the current stream. The tiles and the device scratch are built once per set of arrays; new grads
    rewrite only their row of the pointer table (asynchronously, as the elementwise steps)."""
    lists = (params, grads, row_vars, col_vars, variances)
    for name, given in zip(_ADAFACTOR_NAMES, lists):
        if not isinstance(given, (list, tuple)):
            raise TypeError(f"{name}: expected a list of arrays, got {type(given).__name__}")
    n = len(params)
    if n == 0:
        raise ValueError("params: empty list, nothing to update")
    for name, given in zip(_ADAFACTOR_NAMES[1:], lists[1:]):
        if len(given) != n:
            raise ValueError(f"{name}: expected {n} entries (one per param), got {len(given)}")
    fields = _adafactor_scalars(scalars, n)
    first = _adafactor_array("params", 0, params[0], None, None)
    dtype, device = first.dtype, first.data.device_id
    if dtype.name not in _ADAFACTOR_TYPES:
        raise TypeError(f"params[0]: dtype {dtype} is not supported; expected float32, float64, float16 or "
                        "bfloat16 (as uint16 bits)")
    _check_current_device(device)
    if not _cooperative_device(device):
        raise RuntimeError(f"Adafactor on CUDA device {device} needs cooperative launches (its step is one launch "
                           "whose grid waits for all its threads), and this device does not support them")
    rows: List[List[int]] = [[] for _ in range(5)]
    shapes, extents = [], []
    for i in range(n):
        p = _adafactor_array("params", i, params[i], dtype, device)
        g = _adafactor_array("grads", i, grads[i], dtype, device)
        shape = tuple(p.shape)
        if tuple(g.shape) != shape:
            raise ValueError(f"grads[{i}]: shape {tuple(g.shape)} does not match params[{i}] shape {shape}")
        text = f"params[{i}] shape {shape}"
        if len(shape) >= 2:
            states = [(shape[:-1] + (1,), "the row factor"), (shape[:-2] + (1, shape[-1]), "the column factor"),
                      (None, "2 or more dims (a row and a column factor instead)")]
        else:
            why = "fewer than 2 dims (a variance instead)"
            states = [(None, why), (None, why), (shape, "the variance")]
        pointers = [(p.data.ptr, p.nbytes), (g.data.ptr, g.nbytes)]
        for k, (expected, what) in enumerate(states):
            pointers.append(_adafactor_state(_ADAFACTOR_NAMES[2 + k], i, lists[2 + k][i], expected, what, text, dtype,
                                             device))
        for k, (ptr, nbytes) in enumerate(pointers):
            rows[k].append(ptr)
            if nbytes is not None:
                extents.append((ptr, ptr + nbytes, k, i))
        shapes.append(shape)
    refuse_overlaps(extents, lambda k, i: f"{_ADAFACTOR_NAMES[k]}[{i}]")
    with _launch_lock:
        table = _device_table_of_rows([tuple(r) for r in rows], [math.prod(s) for s in shapes], tuple(shapes),
                                      MAX_CHUNK, moving=1)
        math_dtype = np.dtype(np.float64 if dtype == np.float64 else np.float32)
        if table.scratch is None or table.scratch.steps.dtype != math_dtype:
            table.scratch = _AdafactorPlan(shapes, math_dtype)
        plan = table.scratch
        stream = _cupy().cuda.get_current_stream()
        _staging.copy(fields, plan.scalars.data.ptr, stream)
        _adafactor_launches(plan, table.ptrs, _ADAFACTOR_TYPES[dtype.name])
        _in_flight.hold(tuple(a for given in lists for a in given if a is not None), stream, (table,))


def _adafactor_launches(plan: _AdafactorPlan, ptrs, dtype: str) -> None:
    """The step's one launch: adafactor.cu's phases, the grid waiting between them (a cooperative launch,
    with no more blocks than the device holds at once). The kernel, grid and arguments are made once per
    plan and pointer table."""
    launch = plan.launches.get(dtype)
    if launch is None or launch[0] is not ptrs:
        kernel = _module("adafactor", ()).get_function(f"adafactor_step_{dtype}")
        widest = max(plan.n_tiles * _LANES, plan.n_row_items, plan.n_col_items, plan.n_row_factor_items,
                     plan.n_col_factor_items)
        blocks = min(max(1, plan.n_tiles, -(-widest // THREADS)), _cooperative_blocks(kernel, _device_id(ptrs)))
        args = (ptrs, np.int64(plan.n_tensors), plan.tensors, plan.tiles, np.int64(plan.n_tiles), plan.first_tile,
                plan.row_items, np.int64(plan.n_row_items), plan.col_items, np.int64(plan.n_col_items),
                plan.row_factor_items, np.int64(plan.n_row_factor_items), plan.col_factor_items,
                np.int64(plan.n_col_factor_items), plan.matrix_items, np.int64(plan.n_matrices), plan.scalars,
                plan.p_lanes, plan.u_lanes, plan.row_part, plan.col_part, plan.scales, plan.steps)
        launch = plan.launches[dtype] = (ptrs, kernel, (blocks,), args)
    _, kernel, grid, args = launch
    kernel(grid, (THREADS,), args)


_cooperative_grid: Dict[Tuple[str, int], int] = {}


@functools.lru_cache(maxsize=None)
def _cooperative_device(device_id: int) -> bool:
    return bool(_cupy().cuda.Device(device_id).attributes.get("CooperativeLaunch", 0))


def _cooperative_blocks(kernel, device_id: int) -> int:
    """The most blocks of THREADS threads of a kernel the device holds at once: a cooperative launch's
    largest grid."""
    key = (kernel.name, device_id)
    if key not in _cooperative_grid:
        per_multiprocessor = _cupy().cuda.driver.occupancyMaxActiveBlocksPerMultiprocessor(kernel.kernel.ptr,
                                                                                           THREADS, 0)
        _cooperative_grid[key] = max(1, per_multiprocessor * _multiprocessors(device_id))
    return _cooperative_grid[key]


# --- reductions -----------------------------------------------------------------------------------

GRAD_NORM_KERNELS = {"float32": "grad_norm_float32", "float64": "grad_norm_float64"}


def grad_norm(grads) -> Tuple[float, bool]:
    """(sum of squares in float64, all finite) over a list of CUDA gradients of one dtype: one launch,
    the CPU's chunks and lanes (fusedopt._core.grad_norm's bits), read back to the host."""
    dtype, infos = _check([("grads", grads)])
    with _launch_lock:
        table = _device_table(infos, moving=0, chunk=NORM_CHUNK)
        if table.n_chunks == 0:
            return 0.0, True
        if table.scratch is None:
            cupy = _cupy()
            table.scratch = (cupy.empty(2 * table.n_chunks, np.float64), cupy.zeros(1, np.uint32),
                             cupy.zeros(2, np.float64))
            cupy.cuda.get_current_stream().synchronize()
        _module("reductions", ()).get_function(GRAD_NORM_KERNELS[dtype])(
            (_norm_grid(table),), (THREADS,), (*table.args, *table.scratch))
        out = table.scratch[2].get()  # waits for the launch: the caller needs the value
    squares, bad = (float(x) for x in out)
    return squares, bad == 0.0


# --- the random fills -----------------------------------------------------------------------------

FILL_KERNELS = {0: "init_fill_float32", 1: "init_fill_float64", 2: "init_fill_float16", 3: "init_fill_bfloat16"}


def fill_target(tensor):
    """A CuPy view of a CUDA array to fill in place (never a copy)."""
    view = as_cupy("tensor", tensor)
    if not view.flags.c_contiguous:
        raise ValueError("tensor: array is not C-contiguous; fusedopt fills in place and never copies")
    if view.data.ptr % view.dtype.itemsize:
        raise ValueError("tensor: array is not aligned to its dtype")
    return view


def assign(target, values) -> None:
    """target[...] = values: a fill for a scalar, else one host-to-device copy."""
    if np.ndim(values) == 0:
        target.fill(values)
    else:
        target.set(np.ascontiguousarray(np.broadcast_to(values, target.shape), dtype=target.dtype))


def fill(out, *, out_kind, distribution, a, b, mean, std, y_lo, y_hi, upper_below, seed, stream):
    """Fills a C-contiguous CuPy array in place; the same bits as fusedopt._core.init_fill."""
    n = out.size
    if n == 0:
        return
    _check_current_device(_device_id(out))
    threads = THREADS
    per_block = 2 if out_kind == 1 else 4  # values per Philox block
    blocks = min(-(-n // (2 * per_block * threads)), _max_blocks(_device_id(out)))  # two Philox blocks a thread
    _fill_kernel(FILL_KERNELS[out_kind])(
        (blocks,), (threads,),
        (out, np.int64(n), np.int32(distribution), np.float64(a), np.float64(b), np.float64(mean), np.float64(std),
         np.float64(y_lo), np.float64(y_hi), np.float64(upper_below), np.uint64(seed), np.uint64(stream)))
    _hold_until_done((out,))
