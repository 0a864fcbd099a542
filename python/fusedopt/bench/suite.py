"""The benchmark cases shared by ``fusedopt bench`` and ``benchmarks/*.py``: build each available
implementation on the same data, check its first step against the reference, then time them all
interleaved (harness.time_interleaved) and turn the timings (medians and spreads) into rows."""

from __future__ import annotations

from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from .. import _core, init
from . import harness, impls
from .tables import (OPTIMIZERS, REFERENCE, TORCH_CLASS, bytes_per_param, fill_looks_right, fusedopt_fill, model_shapes,  # noqa: F401
                     rows_from_times, state_buffers, torch_fill, weight_shape)

INITIALIZERS = ("uniform", "normal", "kaiming_uniform", "xavier_normal")
QUICK_INITIALIZERS = ("uniform", "normal", "kaiming_uniform")
CPU_BACKENDS = ("fusedopt", "fusedopt-torch", "numpy", "torch-default", "torch-foreach", "torch-fused")
GPU_BACKENDS = ("cuda", "cupy", "torch-cuda")

# An implementation factory: (optimizer, kwargs, params, grads) -> impls.Impl
Factory = Callable[[str, dict, List[np.ndarray], List[np.ndarray]], impls.Impl]


def torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def available_backends() -> List[str]:
    """The backends this machine can run: the CPU ones, then the GPU ones when CuPy sees a device."""
    from . import gpu

    cpu = [b for b in CPU_BACKENDS if "torch" not in b or torch_available()]
    return cpu + gpu.available_backends()


def shapes_for(size: str):
    """'1e6' -> one tensor; 'model200' -> 200 tensors of ~1e7 elements in all."""
    if size.startswith("model"):
        return model_shapes(10_000_000, int(size[5:]))
    return [(int(float(size)),)]


def factories(backends: Sequence[str]) -> Dict[str, Factory]:
    out: Dict[str, Factory] = {}
    for b in backends:
        if b == "fusedopt":
            out[b] = impls.fusedopt_impl
        elif b == "fusedopt-torch":
            out[b] = impls.fusedopt_torch_impl
        elif b == "numpy":
            out[b] = impls.numpy_impl
        elif b in CPU_BACKENDS and b.startswith("torch-"):
            out[b] = (lambda variant: lambda o, kw, p, g: impls.torch_impl(o, kw, p, g, variant))(b[6:])
    return out


def reference_after_one_step(optimizer, params, grads):
    out = []
    for p, g in zip(params, grads):
        p64 = p.astype(np.float64)
        REFERENCE[optimizer](p64, g.astype(np.float64), {}, **OPTIMIZERS[optimizer])
        out.append(p64)
    return out


def agrees(impl: impls.Impl, expected, dtype) -> bool:
    rtol = 1e-4 if np.dtype(dtype) == np.float32 else 1e-9
    return all(np.allclose(p, e, rtol=rtol, atol=rtol * 1e-2) for p, e in zip(impl.params, expected))


def optimizer_case(optimizer: str, size: str, dtype, threads: int, backends: Sequence[str], repeats: int,
                   extra: Optional[Dict[str, Factory]] = None) -> List[dict]:
    """Rows for one optimizer at one size: each backend's median time, throughput, GB/s by the byte
    model, fraction of the bandwidth probe measured in the same rounds, speedup vs the fastest other
    implementation, and whether its first step agreed with the reference."""
    shapes = shapes_for(size)
    n = sum(int(np.prod(s)) for s in shapes)
    params, grads = impls.make_data(shapes, dtype)
    probe, probe_bytes = harness.stream_probe(n, dtype)
    kw = OPTIMIZERS[optimizer]
    built = {}
    for name, make in {**factories(backends), **(extra or {})}.items():
        impl = make(optimizer, kw, params, grads)
        if impl is not None:
            built[name] = impl
    expected = reference_after_one_step(optimizer, params, grads)
    ok = {}
    for name, impl in built.items():
        impl.step()
        ok[name] = agrees(impl, expected, dtype)
    times = harness.time_interleaved({**{k: v.step for k, v in built.items()}, "probe": probe}, repeats)
    ceiling = probe_bytes / times["probe"]
    itemsize = np.dtype(dtype).itemsize
    per_param = bytes_per_param(optimizer, kw, itemsize)
    footprint = n * itemsize * (2 + state_buffers(optimizer, kw))  # p, g and the state, each stored once
    return rows_from_times(times, built, ok, ceiling, n * per_param,
                           dict(kind="optimizer", name=optimizer, size=size, n=n, dtype=np.dtype(dtype).name,
                                threads=threads), footprint_bytes=footprint, probe=times["probe"])


def initializer_case(name: str, n: int, dtype, threads: int, backends: Sequence[str], repeats: int) -> List[dict]:
    """Rows for one initializer over n elements (a 2-D weight), with a write-only probe as ceiling."""
    shape = weight_shape(n)
    out = np.empty(shape, dtype)
    calls: Dict[str, Callable[[], object]] = {}
    if "fusedopt" in backends:
        calls["fusedopt"] = fusedopt_fill(name, out, init.Generator(0))
    if "numpy" in backends and name in ("uniform", "normal") and np.dtype(dtype) in (np.float32, np.float64):
        rng = np.random.default_rng(0)
        calls["numpy"] = {"uniform": lambda: rng.random(out.shape, out.dtype, out=out),
                          "normal": lambda: rng.standard_normal(out.shape, out.dtype, out=out)}[name]
    if any(b in CPU_BACKENDS and b.startswith("torch") for b in backends) and torch_available():
        import torch

        calls["torch"] = torch_fill(name, torch.from_numpy(out))
    ok = {}
    for k, fn in calls.items():
        fn()
        ok[k] = fill_looks_right(name, shape, out.ravel()[::7].astype(np.float64))
    probe_arr = [np.empty(out.size, dtype)]
    times = harness.time_interleaved({**calls, "probe": lambda: _core.stream_write(probe_arr, 0.0)}, repeats)
    nbytes = out.size * out.dtype.itemsize
    ceiling = nbytes / times["probe"]
    built = {k: None for k in calls}
    return rows_from_times(times, built, ok, ceiling, nbytes,
                           dict(kind="initializer", name=name, size=str(out.size), n=out.size, dtype=out.dtype.name,
                                threads=threads), footprint_bytes=nbytes, probe=times["probe"])


