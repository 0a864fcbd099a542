"""CUDA backend: the kernels of fusedopt/cuda/*.cu compiled by CuPy (NVRTC, --fmad=false, the rules
headers on the include path), one launch per step for a whole tensor list, on the current stream.
Same functions and keywords as the CPU backend; arrays are CuPy arrays, or anything CuPy can view
without a copy (``__cuda_array_interface__``, or DLPack on a CUDA device: PyTorch, JAX, Numba).

Per step, the host work is kept to what changes: a list of the same array objects is checked once
(the check is remembered through weak references, so a freed array is never mistaken for a new one
at the same id), and the device chunk table is built once per (pointers, sizes) and reused."""

from __future__ import annotations

import collections
import functools
import hashlib
import os
import threading
import weakref
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .. import _core, get_include
from . import DLPACK_CUDA, refuse_overlaps

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


SOURCES = ("optimizers", "init", "reductions")  # fusedopt/cuda/<source>.cu


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


def kernel_names(source: str) -> Tuple[str, ...]:
    """Every kernel of one source that this backend launches (for optimizers.cu: name expressions,
    every variant of every registered rule in both types)."""
    if source == "init":
        return tuple(FILL_KERNELS.values())
    if source == "reductions":
        return tuple(GRAD_NORM_KERNELS.values())
    return tuple(name for rule in range(len(_core.rules())) for name in _rule_kernel_names(rule))


@functools.lru_cache(maxsize=None)
def _module(source: str, names: Tuple[str, ...]):
    if names:
        return _cupy().RawModule(code=kernel_source(source), options=compile_options(), name_expressions=names)
    return _cupy().RawModule(code=kernel_source(source), options=compile_options())


def _step_kernel(rule: int, variant: int, dtype: str, kernel: str = "step"):
    """One rule's module holds all its variants in both types: compiled once, at its first launch."""
    return _module("optimizers", _rule_kernel_names(rule)).get_function(step_kernel_name(rule, variant, dtype, kernel))


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
            if info.dtype.name not in _SUPPORTED + tuple(STORAGE):
                raise TypeError(f"params[0]: dtype {info.dtype} is not supported; expected float32, float64, "
                                f"bfloat16 (as uint16 bits) or float16")
        else:
            first = infos[0]
            if info.dtype != first.dtype and not _is_mixed((first.dtype.name, info.dtype.name)):
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
    numel = [int(np.prod(shape)) for shape in infos[0].shapes]
    refuse_overlaps([(ptr, ptr + n * info.dtype.itemsize, k, i) for k, info in enumerate(infos) if info is not None
                     for i, (ptr, n) in enumerate(zip(info.ptrs, numel))],
                    lambda k, i: f"{lists[k][0]}[{i}]")
    names = [info.dtype.name for info in infos if info is not None]
    return ("mixed" if _is_mixed(names) else names[0]), infos


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


def _chunk_table(infos: Sequence[_ListInfo], extra_rows: Sequence[Tuple[int, ...]] = ()):
    """The device chunk table for these lists (and ``extra_rows`` of per-tensor values after them: a
    16-bit step's master copies and tensor ids), built once and reused while their pointers and sizes
    stay the same (a new list at new addresses gets a new table). Returns (args, n_chunks)."""
    chunk = chunk_size()
    rows = [info.ptrs for info in infos] + [tuple(r) for r in extra_rows]
    key = (chunk, infos[0].shapes) + tuple(rows)
    table = _tables.get(key)
    if table is None:
        sizes = [int(np.prod(s)) for s in infos[0].shapes]
        host = build_chunk_table(rows, sizes, chunk)
        device = _to_device(host)
        n_chunks = len(host[0])
        table = (device + (np.int32(len(sizes)), np.int32(n_chunks), np.int32(chunk)), n_chunks)
        if len(_tables) >= 64:  # a bounded cache: training loops reuse one or two lists
            _tables.clear()
        _tables[key] = table
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

_norm_scratch: Dict[tuple, tuple] = {}


def _first_pass_arguments(infos: Sequence[_ListInfo], dtype: str):
    """A two-pass rule's first launch over these lists: its table cut in the CPU's norm chunks, each
    tensor's first chunk, and device scratch (chunk sums, per-tensor counters at zero, factors), built
    once per lists. Returns (arguments before the scalars, number of norm chunks, the factors)."""
    key = (dtype, infos[0].shapes) + tuple(info.ptrs for info in infos)
    cached = _norm_scratch.get(key)
    if cached is None:
        cupy = _cupy()
        sizes = [int(np.prod(s)) for s in infos[0].shapes]
        host = build_chunk_table([info.ptrs for info in infos], sizes, NORM_CHUNK)
        per_tensor = (np.asarray(sizes, np.int64) + NORM_CHUNK - 1) // NORM_CHUNK
        first_chunk = np.concatenate([[0], np.cumsum(per_tensor)]).astype(np.int32)
        table = _to_device(host + (first_chunk,))
        n_chunks = len(host[0])
        sums = cupy.empty(2 * max(n_chunks, 1), np.float64)
        done = cupy.zeros(len(sizes), np.uint32)
        factors = cupy.ones(len(sizes), dtype)
        arguments = (*table[:4], np.int32(len(sizes)), np.int32(n_chunks), np.int32(NORM_CHUNK), table[4], sums, done,
                     factors)
        if len(_norm_scratch) >= 64:  # a bounded cache, as the chunk tables'
            _norm_scratch.clear()
        cached = _norm_scratch[key] = (arguments, n_chunks, factors)
    return cached


def _launch(rule: int, variant: int, dtype: str, infos: Sequence[_ListInfo], scalars) -> None:
    """One step over the lists the variant uses: one launch (two for a two-pass rule's norms)."""
    args, n_chunks = _chunk_table(infos)
    if n_chunks == 0:
        return
    blocks = min(n_chunks, _max_blocks(infos[0].device))
    kernels = kernels_of(rule, variant)
    if kernels == ("step",):
        _step_kernel(rule, variant, dtype)((blocks,), (THREADS,), (*args, scalars))
        return
    first, norm_chunks, factors = _first_pass_arguments(infos, dtype)
    if "first_pass" in kernels:  # one thread per norm chunk
        grid = min(-(-norm_chunks // THREADS), _max_blocks(infos[0].device))
        _step_kernel(rule, variant, dtype, "first_pass")((grid,), (THREADS,), (*first, scalars))
    _step_kernel(rule, variant, dtype, "scaled_step")((blocks,), (THREADS,), (*args, factors, scalars))


# Launches that may still run, each with the arrays it reads and writes: a launch returns before the
# GPU has run it, and CuPy's pool hands a freed block at once to the next allocation on the stream
# that allocated it, which need not be the launch's stream. Released when the GPU reports it done.
_in_flight: "collections.deque" = collections.deque()
_in_flight_lock = threading.Lock()


def _hold_until_done(arrays) -> None:
    event = _cupy().cuda.Event(disable_timing=True)
    event.record()
    with _in_flight_lock:
        while _in_flight and _in_flight[0][0].done:
            _in_flight.popleft()
        _in_flight.append((event, arrays))


# --- the optimizer step and plan (the interface of fusedopt.backends) ------------------------------

def mixed_kernel_name(rule: int, variant: int, storage: Sequence[int], master: bool, stochastic: bool) -> str:
    """The name expression of a 16-bit step (optimizers.cu ``mixed_step``): storage per list in use."""
    flags = f"{str(master).lower()}, {str(stochastic).lower()}"
    return (f"fusedopt::cuda::mixed_step<fusedopt::rules::{_rule(rule)['cpp_name']}<{variant}u>, {flags}, "
            f"{', '.join(map(str, storage))}>")


def _check_precision(rule: int, infos, master_info, stochastic: bool, names) -> None:
    """What a 16-bit step may not be asked for, as the CPU binding refuses it (before anything runs)."""
    if _rule(rule)["per_tensor_norms"]:
        raise NotImplementedError(f"{_rule(rule)['name']}: 16-bit storage on the GPU has no two-pass kernel yet "
                                  "(it runs on the CPU)")
    dtypes = [info.dtype.name for info in infos]
    if master_info is not None:
        if master_info.dtype.name != "float32":
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


def _launch_mixed(rule: int, variant: int, infos, master_info, ids, rounding, scalars) -> None:
    """One 16-bit step: one launch, the table holding the master copies and the tensor ids after the lists."""
    extra = ([master_info.ptrs] if master_info is not None else []) + [tuple(ids)]
    args, n_chunks = _chunk_table(infos, extra)
    if n_chunks == 0:
        return
    stochastic = rounding is not None
    seed, step = rounding if stochastic else (0, 0)
    name = mixed_kernel_name(rule, variant, [STORAGE[info.dtype.name] for info in infos], master_info is not None,
                             stochastic)
    kernel = _module("optimizers", (name,)).get_function(name)
    blocks = min(n_chunks, _max_blocks(infos[0].device))
    kernel((blocks,), (THREADS,), (*args, np.uint64(seed), np.uint64(step), scalars))


def step(spec, variant: int, names, lists, scalars: bytes, master=None, rounding=None) -> None:
    _check_variant(spec.rule_index, variant, len(lists))
    checked = list(zip(names, lists)) + ([("master_params", master)] if master is not None else [])
    dtype, infos = _check(checked)
    master_info = infos.pop() if master is not None else None
    if dtype == "mixed" or master is not None:  # (float32 or float64 lists round nothing: rounding is moot)
        _check_precision(spec.rule_index, infos, master_info, rounding is not None, names)
        _launch_mixed(spec.rule_index, variant, infos, master_info, range(len(lists[0])), rounding,
                      _scalars_struct(spec.rule_index, "float32", scalars))
    else:
        _launch(spec.rule_index, variant, dtype, infos, _scalars_struct(spec.rule_index, dtype, scalars))
    _hold_until_done(tuple(a for arrays in lists for a in arrays) + tuple(master or ()))


def _renamed(error: Exception, names: Dict[str, Sequence[str]]) -> Exception:
    """The same error, naming arrays as the user knows them (list name -> one name per array)."""
    import re

    def user_name(m):
        listed = names.get(m.group(1))
        return listed[int(m.group(2))] if listed is not None and int(m.group(2)) < len(listed) else m.group(0)

    return type(error)(re.sub(r"(\w+)\[(\d+)\]", user_name, str(error)))


class Plan:
    """An optimizer's params and state on the GPU, cut into calls as fusedopt._core.Plan: the lists
    are kept and checked once; a step checks the gradients (a list of the same CuPy arrays is
    remembered) and launches one kernel per call, after every call's checks."""

    def __init__(self, calls, n_params: int):
        self.n_params = n_params
        self._calls = []
        for rule, params, buffers, indices, names, buffer_names, *master in calls:
            master, master_names = (master + [None, None])[:2]
            lists = [("params", list(params)), ("grads", list(params))]
            lists += [(f"buffers{k}", list(b)) for k, b in enumerate(buffers)]
            user = {"params": names, **{f"buffers{k}": n for k, n in enumerate(buffer_names)}}
            if master is not None:
                lists.append(("master_params", list(master)))
                user["master_params"] = master_names
            try:
                _check(lists)
            except (TypeError, ValueError) as e:
                raise _renamed(e, user) from None
            user["grads"] = [f"grads[{i}]" for i in indices]
            self._calls.append((rule, lists, list(indices), user, master is not None))
        self.n_calls = len(self._calls)

    def step(self, grads, variants, scalars, rounding=None) -> bool:
        if not isinstance(grads, (list, tuple)):
            raise TypeError(f"grads: expected a list of arrays, got {type(grads).__name__}")
        if len(grads) != self.n_params:
            raise ValueError(f"grads: expected {self.n_params} arrays (one per param, None to skip one), got {len(grads)}")
        if any(grads[i] is None for _, _, indices, _, _ in self._calls for i in indices):
            return False
        launches, extents = [], []
        for c, ((rule, lists, indices, user, has_master), variant, packed) in enumerate(
                zip(self._calls, variants, scalars)):
            _check_variant(rule, variant, len(lists) - has_master)
            checked = list(lists)
            checked[1] = ("grads", [grads[i] for i in indices])
            try:
                dtype, infos = _check(checked)
                if infos[1].dtype != infos[0].dtype:  # as in torch, a grad has its param's dtype
                    raise TypeError(f"grads[0]: dtype {infos[1].dtype} does not match params[0] dtype {infos[0].dtype}")
                master_info = infos[-1] if has_master else None
                call_rounding = None if rounding is None else tuple(rounding[c])
                if dtype == "mixed" or has_master:
                    _check_precision(rule, infos[:len(infos) - has_master], master_info, call_rounding is not None,
                                     [name for name, _ in lists])
            except (TypeError, ValueError) as e:
                raise _renamed(e, user) from None
            if dtype == "mixed" or has_master:
                launches.append((_launch_mixed, rule, variant, infos[:len(infos) - has_master], master_info, indices,
                                 call_rounding, _scalars_struct(rule, "float32", packed)))
            else:
                launches.append((_launch, rule, variant, dtype, infos, _scalars_struct(rule, dtype, packed)))
            numel = [int(np.prod(shape)) for shape in infos[0].shapes]
            extents += [(ptr, ptr + n * info.dtype.itemsize, k, (c, i)) for k, info in enumerate(infos)
                        for i, (ptr, n) in enumerate(zip(info.ptrs, numel))]
        # across calls too (each call's own arrays were checked by _check)
        refuse_overlaps(extents, lambda k, ci: self._calls[ci[0]][3][self._calls[ci[0]][1][k][0]][ci[1]])
        for launch, *arguments in launches:
            launch(*arguments)
        _hold_until_done((self, tuple(grads)))
        return True


def check_param(p, where: str) -> None:
    v = as_cupy(where, p)  # a view, to read dtype and flags the same way for every framework
    if v.dtype.name == "uint16":
        raise TypeError(f"{where}: dtype uint16 (bfloat16 bits) is not supported by the optimizer classes on the GPU "
                        "yet; fusedopt.functional takes it, and the classes take float32, float64 and float16")
    if v.dtype.name not in _SUPPORTED + ("float16",):
        raise TypeError(f"{where}: dtype {v.dtype} is not supported; expected float32, float64 or float16")
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
    return as_cupy("params", p).dtype.name


def full_like(p, value, dtype=None):
    return _cupy().full_like(as_cupy("params", p), value, dtype=dtype)


def copy_like(value, p, dtype=None):
    """A C-contiguous copy of saved state ``value`` with the dtype and device of param ``p``."""
    cupy = _cupy()
    view = as_cupy("params", p)
    with cupy.cuda.Device(view.data.device_id):
        return cupy.array(value, dtype=view.dtype if dtype is None else dtype, order="C", copy=True)


def to_host(value):
    return as_cupy("state_dict", value).get()


# --- reductions -----------------------------------------------------------------------------------

GRAD_NORM_KERNELS = {"float32": "grad_norm_float32", "float64": "grad_norm_float64"}
_grad_norm_scratch: Dict[tuple, tuple] = {}


def grad_norm(grads) -> Tuple[float, bool]:
    """(sum of squares in float64, all finite) over a list of CUDA gradients of one dtype: one launch,
    the CPU's chunks and lanes (fusedopt._core.grad_norm's bits), read back to the host."""
    dtype, infos = _check([("grads", grads)])
    key = (dtype, infos[0].shapes, infos[0].ptrs)
    cached = _grad_norm_scratch.get(key)
    if cached is None:
        cupy = _cupy()
        sizes = [int(np.prod(s)) for s in infos[0].shapes]
        host = build_chunk_table([infos[0].ptrs], sizes, NORM_CHUNK)
        n_chunks = len(host[0])
        table = _to_device(host)
        scratch = (cupy.empty(2 * max(n_chunks, 1), np.float64), cupy.zeros(1, np.uint32), cupy.zeros(2, np.float64))
        arguments = (*table, np.int32(len(sizes)), np.int32(n_chunks), np.int32(NORM_CHUNK), *scratch)
        if len(_grad_norm_scratch) >= 64:  # a bounded cache, as the chunk tables'
            _grad_norm_scratch.clear()
        cached = _grad_norm_scratch[key] = (arguments, n_chunks, scratch[2])
    arguments, n_chunks, out = cached
    if n_chunks == 0:
        return 0.0, True
    grid = min(-(-n_chunks // THREADS), _max_blocks(infos[0].device))
    _module("reductions", ()).get_function(GRAD_NORM_KERNELS[dtype])((grid,), (THREADS,), arguments)
    squares, bad = (float(x) for x in out.get())
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
    blocks = min(-(-n // (per_block * threads)), _max_blocks(_device_id(out)))
    _fill_kernel(FILL_KERNELS[out_kind])(
        (blocks,), (threads,),
        (out, np.int64(n), np.int32(distribution), np.float64(a), np.float64(b), np.float64(mean), np.float64(std),
         np.float64(y_lo), np.float64(y_hi), np.float64(upper_below), np.uint64(seed), np.uint64(stream)))
    _hold_until_done((out,))
