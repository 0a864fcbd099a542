"""CUDA backend: the kernels of fusedopt/cuda/*.cu compiled by CuPy (NVRTC, --fmad=false, the rules
headers on the include path), one launch per step for a whole tensor list, on the current stream.
Same functions and keywords as the CPU backend; arrays are CuPy arrays (or anything CuPy can view
without a copy through ``__cuda_array_interface__``)."""

from __future__ import annotations

import functools
import os
from typing import Dict, Sequence, Tuple

import numpy as np

from .. import _core, get_include

CHUNK = 2048  # elements per chunk: one block walks one chunk (8 per thread), so even 1e6 fills the GPU
_SUPPORTED = ("float32", "float64")


def _cupy():
    try:
        import cupy
    except ImportError:
        raise TypeError("params: CUDA arrays need CuPy (pip install 'fusedopt[cuda]')") from None
    return cupy


@functools.lru_cache(maxsize=None)
def _kernel(family: str, dtype: str):
    cupy = _cupy()
    path = os.path.join(os.path.dirname(os.path.dirname(__file__)), "cuda", f"{family}.cu")
    with open(path) as f:
        code = f.read()
    module = cupy.RawModule(code=code, options=("-std=c++17", "--fmad=false", f"-I{get_include()}"))
    return module.get_function(f"{family}_{dtype}")


def _check(lists: Sequence[Tuple[str, object, bool]]):
    """Checks every array (DESIGN.md §5) and returns (dtype name, arrays per list, sizes)."""
    cupy = _cupy()
    name0, params, _ = lists[0]
    if not isinstance(params, (list, tuple)):
        raise TypeError(f"params: expected a list of arrays, got {type(params).__name__}")
    if not params:
        raise ValueError("params: empty list, nothing to update")
    out = []
    dtype = None
    device = None
    for name, arrays, _writable in lists:
        if arrays is None:
            out.append(None)
            continue
        if not isinstance(arrays, (list, tuple)):
            raise TypeError(f"{name}: expected a list of arrays, got {type(arrays).__name__}")
        if len(arrays) != len(params):
            raise ValueError(f"{name}: expected {len(params)} arrays (one per param), got {len(arrays)}")
        converted = []
        for i, a in enumerate(arrays):
            if not hasattr(a, "__cuda_array_interface__"):
                raise TypeError(f"{name}[{i}]: {type(a).__name__} is not on a CUDA device, params[0] is: one call "
                                "runs on one device")
            a = a if isinstance(a, cupy.ndarray) else cupy.asarray(a)  # a view, never a copy
            if dtype is None:
                if a.dtype.name not in _SUPPORTED:
                    raise TypeError(f"params[0]: dtype {a.dtype} is not supported; expected float32 or float64")
                dtype, device = a.dtype, a.data.device_id
            elif a.dtype != dtype:
                raise TypeError(f"{name}[{i}]: dtype {a.dtype} does not match params[0] dtype {dtype} "
                                "(all arrays of one call share a dtype)")
            if a.data.device_id != device:
                raise ValueError(f"{name}[{i}]: on device {a.data.device_id}, params[0] on device {device}")
            if not a.flags.c_contiguous:
                raise ValueError(f"{name}[{i}]: array is not C-contiguous; fusedopt updates in place and never copies")
            if name != name0 and a.shape != out[0][i].shape:
                raise ValueError(f"{name}[{i}]: shape {a.shape} does not match params[{i}] shape {out[0][i].shape}")
            converted.append(a)
        out.append(converted)
    return dtype.name, out


_tables: Dict[tuple, tuple] = {}


def _chunk_table(arrays_per_slot):
    """The device chunk table for these arrays, built once and reused while their pointers and
    sizes stay the same (a new list at new addresses gets a new table)."""
    params = arrays_per_slot[0]
    key = tuple(tuple(a.data.ptr for a in arrays) if arrays is not None else None for arrays in arrays_per_slot)
    key += (tuple(a.size for a in params),)
    table = _tables.get(key)
    if table is None:
        cupy = _cupy()
        sizes = np.array([a.size for a in params], np.int64)
        tensor, start = [], []
        for t, n in enumerate(sizes):
            for s in range(0, int(n), CHUNK):
                tensor.append(t)
                start.append(s)
        ptrs = np.zeros((len(arrays_per_slot), len(params)), np.uint64)
        for k, arrays in enumerate(arrays_per_slot):
            if arrays is not None:
                ptrs[k] = [a.data.ptr for a in arrays]
        table = (cupy.asarray(np.array(tensor, np.int32)), cupy.asarray(np.array(start, np.int64)),
                 cupy.asarray(sizes), cupy.asarray(ptrs.ravel()), np.int32(len(params)), np.int32(len(tensor)),
                 np.int32(CHUNK))
        if len(_tables) > 64:  # a bounded cache: training loops reuse one or two lists
            _tables.clear()
        _tables[key] = table
    return table


def _launch(family, dtype, arrays_per_slot, scalars, flags=()):
    table = _chunk_table(arrays_per_slot)
    if int(table[5]) == 0:
        return
    t = np.float32 if dtype == "float32" else np.float64
    blocks = min(int(table[5]), 65535)
    _kernel(family, dtype)((blocks,), (256,), (*table, *(t(x) for x in scalars), *(np.int32(f) for f in flags)))


def check_lists(params, grads, *buffers):
    _check([("params", params, True), ("grads", grads, False)] +
           [(f"buffers[{k}]", b, True) for k, b in enumerate(buffers)])


def sgd(params, grads, momentum_buffers, *, lr, momentum, dampening, weight_decay, nesterov, maximize, first_step):
    has_momentum = momentum != 0.0
    if has_momentum and momentum_buffers is None:
        raise ValueError("momentum_buffers: required when momentum != 0")
    dtype, arrays = _check([("params", params, True), ("grads", grads, False),
                            ("momentum_buffers", momentum_buffers if has_momentum else None, True)])
    s = _core.sgd_scalars(float64=dtype == "float64", lr=lr, momentum=momentum, dampening=dampening,
                          weight_decay=weight_decay, nesterov=nesterov, maximize=maximize)
    _launch("sgd", dtype, arrays, s, (has_momentum, has_momentum and nesterov, has_momentum and first_step))


def adagrad(params, grads, state_sums, *, step, lr, lr_decay, weight_decay, eps, maximize):
    dtype, arrays = _check([("params", params, True), ("grads", grads, False), ("state_sums", state_sums, True)])
    s = _core.adagrad_scalars(float64=dtype == "float64", step=step, lr=lr, lr_decay=lr_decay,
                              weight_decay=weight_decay, eps=eps, maximize=maximize)
    _launch("adagrad", dtype, arrays, s)


def rmsprop(params, grads, square_avgs, grad_avgs, momentum_buffers, *, lr, alpha, eps, weight_decay, momentum,
            centered, maximize):
    if centered and grad_avgs is None:
        raise ValueError("grad_avgs: required when centered=True")
    if momentum > 0 and momentum_buffers is None:
        raise ValueError("momentum_buffers: required when momentum > 0")
    dtype, arrays = _check([("params", params, True), ("grads", grads, False), ("square_avgs", square_avgs, True),
                            ("grad_avgs", grad_avgs if centered else None, True),
                            ("momentum_buffers", momentum_buffers if momentum > 0 else None, True)])
    s = _core.rmsprop_scalars(float64=dtype == "float64", lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                              momentum=momentum, centered=centered, maximize=maximize)
    _launch("rmsprop", dtype, arrays, s, (centered, momentum > 0))


def adam(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, *, step, lr, beta1, beta2, eps, weight_decay, amsgrad,
         maximize, decoupled_weight_decay):
    if amsgrad and max_exp_avg_sqs is None:
        raise ValueError("max_exp_avg_sqs: required when amsgrad=True")
    dtype, arrays = _check([("params", params, True), ("grads", grads, False), ("exp_avgs", exp_avgs, True),
                            ("exp_avg_sqs", exp_avg_sqs, True),
                            ("max_exp_avg_sqs", max_exp_avg_sqs if amsgrad else None, True)])
    s = _core.adam_scalars(float64=dtype == "float64", step=step, lr=lr, beta1=beta1, beta2=beta2, eps=eps,
                           weight_decay=weight_decay, amsgrad=amsgrad, maximize=maximize,
                           decoupled_weight_decay=decoupled_weight_decay)
    _launch("adam", dtype, arrays, s, (amsgrad,))
