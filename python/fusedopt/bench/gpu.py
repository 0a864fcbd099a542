"""The GPU benchmark cases shared by ``fusedopt bench --backends cuda,cupy,torch-cuda`` and
``benchmarks/bench_gpu.py``: fusedopt's CUDA kernels vs torch on CUDA (``fused=True`` and
``foreach=True``) vs a CuPy elementwise kernel, on the same data, each checked against the reference
first, then timed with CUDA events after warm-up, interleaved, medians. The ceiling is a
device-to-device copy moving the case's bytes, measured in the same rounds.

Backends: ``cuda`` (fusedopt on CuPy arrays), ``cupy`` (a CuPy ElementwiseKernel: Adam and SGD),
``torch-cuda`` (torch's fused and foreach optimizers; torch's in-place fills for initializers)."""

from __future__ import annotations

import math
import os
from typing import Callable, Dict, List, Sequence

import numpy as np

from .. import init
from . import harness, impls, tables

BACKENDS = ("cuda", "cupy", "torch-cuda")


def cuda_available() -> bool:
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # noqa: BLE001 - no CuPy, no driver or no device: no GPU backends
        return False


def torch_cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def available_backends() -> List[str]:
    if not cuda_available():
        return []
    return ["cuda", "cupy"] + (["torch-cuda"] if torch_cuda_available() else [])


def device_name() -> str:
    import cupy

    return cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)["name"].decode()


def event_timer(call: Callable[[], object]) -> float:
    """Seconds one call takes by CUDA events around it (so the host's launch work counts, as it
    does in a training loop)."""
    import cupy

    start, end = cupy.cuda.Event(), cupy.cuda.Event()
    start.record()
    call()
    end.record()
    end.synchronize()
    return cupy.cuda.get_elapsed_time(start, end) * 1e-3


_BUSY: list = []


def _busy():
    """A device-to-device copy of 256 MiB (about 0.2 ms on an H100; FUSEDOPT_BENCH_BUSY_ELEMENTS
    float32 elements instead, for the host emulation's tests): queued before a timed call so that the
    call's host work is done while the GPU is still busy."""
    import cupy

    if not _BUSY:
        src = cupy.ones(int(os.environ.get("FUSEDOPT_BENCH_BUSY_ELEMENTS", 1 << 26)), cupy.float32)
        _BUSY.append((src, cupy.empty_like(src)))
    src, dst = _BUSY[0]
    dst[...] = src


def kernel_timer(call: Callable[[], object]) -> float:
    """Seconds of GPU work one call queues, by CUDA events around it with the queue full (a copy
    queued first keeps the GPU busy while the host works), so the host's launch work does not count:
    the kernels' time."""
    import cupy

    start, end = cupy.cuda.Event(), cupy.cuda.Event()
    _busy()
    start.record()
    call()
    end.record()
    end.synchronize()
    return cupy.cuda.get_elapsed_time(start, end) * 1e-3


def time_events(steps: Dict[str, Callable[[], object]], repeats: int, warmup: int = 3,
                kernel_only: bool = False) -> Dict[str, float]:
    """harness.time_interleaved with CUDA events as the timer: whole calls (host launch work
    included, as in a training loop), or with ``kernel_only`` the GPU work alone (kernel_timer)."""
    import cupy

    return harness.time_interleaved(steps, repeats, warmup, timer=kernel_timer if kernel_only else event_timer,
                                    before=lambda: cupy.cuda.Device().synchronize())


def _with_kernel_times(rows: List[dict], kernel_times, nbytes: int, probe_bytes: int) -> None:
    """Each row's kernel-only time and its fraction of the copy's bandwidth, both timed with the queue full."""
    for row in rows:
        row["kernel_ms"] = kernel_times[row["backend"]] * 1e3
        row["kernel_frac_copy"] = nbytes / kernel_times[row["backend"]] / (probe_bytes / kernel_times["copy"])


def adam_traffic(shapes, dtype):
    """fusedopt's Adam-traffic probe over arrays of the case's shapes (4 reads, 3 writes per element,
    the step's walker, no math): the Adam step's own ceiling."""
    import cupy

    from ..backends import cuda

    lists = [[cupy.ones(s, dtype) for s in shapes] for _ in range(4)]
    return cuda.adam_traffic_probe(*lists), lists


PROBE_MAX_BYTES = 4_000_000_000  # 80x an H100's L2: large enough for the bandwidth, small enough to fit beside 1e9


def copy_probe(nbytes: int):
    """A device-to-device copy that reads and writes nbytes in all (at most PROBE_MAX_BYTES): the
    bandwidth ceiling. Returns the callable and the bytes it moves."""
    import cupy

    nbytes = min(nbytes, PROBE_MAX_BYTES)
    src = cupy.ones(max(1, nbytes // 8), cupy.float32)
    dst = cupy.empty_like(src)
    return (lambda: dst.__setitem__(Ellipsis, src)), 2 * src.nbytes


def write_probe(nbytes: int):
    """A fill of a separate buffer writing nbytes (the write-bandwidth ceiling of initializers)."""
    import cupy

    buf = cupy.empty(max(1, nbytes // 4), cupy.float32)
    return lambda: buf.fill(0)


def shapes_for(size: str):
    """'1e8' -> one tensor; 'model200' -> 200 tensors of ~1e8 elements in all (the GPU-sized model);
    'small200' -> 200 tensors of ~1e6 in all, where the per-step cost of launching and of the host
    work shows (it fits in the L2 cache, so read its milliseconds, not its bandwidth)."""
    if size.startswith("model"):
        return tables.model_shapes(100_000_000, int(size[5:]))
    if size.startswith("small"):
        return tables.model_shapes(1_000_000, int(size[5:]))
    return [(int(float(size)),)]


# --- implementations ------------------------------------------------------------------------------

def _fusedopt_cuda(optimizer, kw, host_p, host_g):
    import cupy

    import fusedopt

    ps = [cupy.asarray(p) for p in host_p]
    gs = [cupy.asarray(g) for g in host_g]
    opt = getattr(fusedopt, tables.TORCH_CLASS[optimizer])(ps, **kw)
    return {"fusedopt-cuda": impls.Impl(lambda: opt.step(gs), ps)}


def _torch_cuda(optimizer, kw, host_p, host_g, variants=("fused", "foreach")):
    import cupy
    import torch

    out = {}
    for variant in variants:
        flags = {variant: True}
        if variant == "fused" and optimizer not in tables.TORCH_FUSED:
            continue
        ts = [torch.tensor(p, device="cuda", requires_grad=True) for p in host_p]
        for t, g in zip(ts, host_g):
            t.grad = torch.tensor(g, device="cuda")
        opt = getattr(torch.optim, tables.TORCH_CLASS[optimizer])(ts, **kw, **flags)
        out[f"torch-cuda-{variant}"] = impls.Impl(opt.step, [cupy.asarray(t.detach()) for t in ts])
    return out


_CUPY_STEPS = {
    "adam": ("T g, T c1, T c2, T b1, T b2, T eps", "T p, T m, T v",
             "m = b1 * m + (1 - b1) * g; v = b2 * v + (1 - b2) * g * g; p -= c1 * m / (sqrt(v) / c2 + eps);"),
    "sgd": ("T g, T lr, T mu", "T p, T b", "b = mu * b + g; p -= lr * b;"),
}


def _cupy_elementwise(optimizer, kw, host_p, host_g):
    """One ElementwiseKernel launch per tensor (what a CuPy user writes by hand): Adam and SGD
    with momentum as in the benchmark's hyperparameters."""
    import cupy

    if optimizer not in _CUPY_STEPS or (optimizer == "sgd" and not kw.get("momentum")):
        return {}
    params, outs, body = _CUPY_STEPS[optimizer]
    kernel = cupy.ElementwiseKernel(params, outs, body, f"fusedopt_bench_{optimizer}")
    ps = [cupy.asarray(p) for p in host_p]
    gs = [cupy.asarray(g) for g in host_g]
    states = [[cupy.zeros_like(p) for p in ps] for _ in range(2 if optimizer == "adam" else 1)]
    count = [0]
    t = np.float32 if host_p[0].dtype == np.float32 else np.float64

    def step():
        count[0] += 1
        if optimizer == "adam":
            b1, b2 = (0.9, 0.999)
            c1, c2 = t(kw["lr"] / (1 - b1 ** count[0])), t(math.sqrt(1 - b2 ** count[0]))
            for p, g, m, v in zip(ps, gs, *states):
                kernel(g, c1, c2, t(b1), t(b2), t(1e-8), p, m, v)
        else:
            for p, g, b in zip(ps, gs, states[0]):
                if count[0] == 1:
                    b[...] = 0  # torch's first step sets b = g: with b = 0, mu*b + g is that
                kernel(g, t(kw["lr"]), t(kw["momentum"]), p, b)

    return {"cupy-elementwise": impls.Impl(step, ps)}


_BUILDERS = {"cuda": _fusedopt_cuda, "cupy": _cupy_elementwise, "torch-cuda": _torch_cuda}


def _agrees_on_sample(impl, host_p, host_g, optimizer, kw, dtype) -> bool:
    """After one step, params[0] on a sample of up to 1e5 elements against the float64 reference."""
    import cupy

    stride = max(1, host_p[0].size // 100_000)
    expected = host_p[0].reshape(-1)[::stride].astype(np.float64)
    tables.REFERENCE[optimizer](expected, host_g[0].reshape(-1)[::stride].astype(np.float64), {}, **kw)
    got = cupy.asnumpy(impl.params[0].reshape(-1)[::stride])
    rtol = 1e-4 if np.dtype(dtype) == np.float32 else 1e-9
    return bool(np.allclose(got, expected, rtol=rtol, atol=rtol * 1e-2))


def optimizer_case(optimizer: str, size: str, dtype, backends: Sequence[str], repeats: int,
                   torch_variants: Sequence[str] = ("fused", "foreach")) -> List[dict]:
    """Rows for one optimizer at one size on the GPU, in the format of tables.optimizer_case
    (``torch_variants``: fewer torch optimizers where memory is short, as at 1e9)."""
    import cupy

    shapes = shapes_for(size)
    n = sum(int(np.prod(s)) for s in shapes)
    host_p, host_g = impls.make_data(shapes, dtype)
    kw = tables.OPTIMIZERS[optimizer]
    built: Dict[str, impls.Impl] = {}
    for b in backends:
        if b == "torch-cuda":
            built.update(_torch_cuda(optimizer, kw, host_p, host_g, torch_variants))
        else:
            built.update(_BUILDERS[b](optimizer, kw, host_p, host_g))
    ok = {}
    for name, impl in built.items():
        impl.step()
        ok[name] = _agrees_on_sample(impl, host_p, host_g, optimizer, kw, dtype)
    nbytes = n * tables.bytes_per_param(optimizer, kw, np.dtype(dtype).itemsize)
    probe, probe_bytes = copy_probe(nbytes)
    calls = {**{k: v.step for k, v in built.items()}, "copy": probe}
    traffic = None
    if optimizer == "adam" and "fusedopt-cuda" in built:
        calls["adam-traffic"], traffic = adam_traffic(shapes, dtype)
    times, kernel_times = time_events(calls, repeats), time_events(calls, repeats, kernel_only=True)
    ceiling = probe_bytes / times["copy"]
    rows = tables.rows_from_times(times, built, ok, ceiling, nbytes,
                                 dict(kind="optimizer", name=optimizer, size=size, n=n, dtype=np.dtype(dtype).name,
                                      threads=None, device=device_name()))
    _with_kernel_times(rows, kernel_times, nbytes, probe_bytes)
    for row in rows:  # the Adam step's own ceiling
        if traffic is not None:
            row["traffic_ms"], row["traffic_kernel_ms"] = times["adam-traffic"] * 1e3, kernel_times["adam-traffic"] * 1e3
            row["frac_traffic"] = times["adam-traffic"] / times[row["backend"]]
            row["kernel_frac_traffic"] = kernel_times["adam-traffic"] / kernel_times[row["backend"]]
    del built, traffic
    cupy.get_default_memory_pool().free_all_blocks()
    return rows


def initializer_case(name: str, n: int, dtype, backends: Sequence[str], repeats: int) -> List[dict]:
    """Rows for one initializer over n elements on the GPU (a 2-D weight); the ceiling is a
    write-only fill of as many bytes (cupy.ndarray.fill). cupy-random draws into a new array and
    copies it, the usual CuPy way: its time includes that copy."""
    import cupy

    shape = tables.weight_shape(n)
    out = cupy.empty(shape, dtype)
    calls: Dict[str, Callable[[], object]] = {}
    if "cuda" in backends:
        calls["fusedopt-cuda"] = tables.fusedopt_fill(name, out, init.Generator(0))
    if "torch-cuda" in backends:
        import torch

        calls["torch-cuda"] = tables.torch_fill(name, torch.as_tensor(out, device="cuda"))  # the same memory
    if "cupy" in backends and name in ("uniform", "normal"):
        def cupy_random(draw):  # CuPy's samplers return a new array: copied into `out` for the check
            return lambda: out.__setitem__(Ellipsis, draw(out.shape, dtype=out.dtype))

        calls["cupy-random"] = cupy_random(cupy.random.random_sample if name == "uniform"
                                           else cupy.random.standard_normal)
    ok = {}
    for k, fn in calls.items():
        fn()
        ok[k] = tables.fill_looks_right(name, shape, cupy.asnumpy(out.ravel()[::7]).astype(np.float64))
    nbytes = out.nbytes
    probe = write_probe(nbytes)
    times = time_events({**calls, "write": probe}, repeats)
    ceiling = nbytes / times["write"]
    return tables.rows_from_times(times, {k: None for k in calls}, ok, ceiling, nbytes,
                                 dict(kind="initializer", name=name, size=str(out.size), n=out.size,
                                      dtype=np.dtype(dtype).name, threads=None, device=device_name()))


def kernel_table(rows: List[dict]) -> str:
    """The GPU rows' kernel-only times (queue full, the host's work hidden) beside their whole-step
    times, and for Adam the fraction of the Adam-traffic probe (same bytes, same walker, no math)."""
    lines = [f"{'case':28} {'backend':22} {'step ms':>9} {'kernel ms':>10} {'%copy(k)':>9} {'%traffic':>9} "
             f"{'%traffic(k)':>11}"]
    for r in rows:
        if "kernel_ms" not in r:
            continue
        traffic = f"{100 * r['frac_traffic']:8.1f}%" if "frac_traffic" in r else f"{'':9}"
        traffic_k = f"{100 * r['kernel_frac_traffic']:10.1f}%" if "kernel_frac_traffic" in r else f"{'':11}"
        lines.append(f"{r['name'] + ' ' + r['size'] + ' ' + r['dtype']:28} {r['backend']:22} {r['ms']:9.3f} "
                     f"{r['kernel_ms']:10.3f} {100 * r['kernel_frac_copy']:8.1f}% {traffic} {traffic_k}")
    return "\n".join(lines)


def adafactor_case(case: str, backends: Sequence[str], repeats: int) -> List[dict]:
    """Adafactor on the GPU (tables.ADAFACTOR_CASES, float32, lr 1e-2): fusedopt against torch's
    foreach Adafactor on CUDA (torch has no fused one), each checked against the float64 reference
    after one step; the ceiling is a device-to-device copy of the byte model's bytes."""
    import cupy

    import fusedopt

    shapes, kwargs = tables.ADAFACTOR_CASES[case], dict(lr=1e-2)
    host_p, host_g = impls.make_data(shapes, np.float32)
    n = sum(int(np.prod(s)) for s in shapes)
    nbytes = sum(int(np.prod(s)) * 4 * tables.adafactor_arrays_per_param(s) for s in shapes)
    built: Dict[str, impls.Impl] = {}
    if "cuda" in backends:
        ps, gs = [cupy.asarray(p) for p in host_p], [cupy.asarray(g) for g in host_g]
        opt = fusedopt.Adafactor(ps, **kwargs)
        built["fusedopt-cuda"] = impls.Impl(lambda: opt.step(gs), ps)
    if "torch-cuda" in backends:
        import torch

        ts = [torch.tensor(p, device="cuda", requires_grad=True) for p in host_p]
        for t, g in zip(ts, host_g):
            t.grad = torch.tensor(g, device="cuda")
        torch_opt = torch.optim.Adafactor(ts, foreach=True, **kwargs)
        built["torch-cuda-foreach"] = impls.Impl(torch_opt.step, [cupy.asarray(t.detach()) for t in ts])
    expected = tables.adafactor_expected(host_p, host_g, kwargs)
    ok = {}
    for name, impl in built.items():
        impl.step()
        ok[name] = all(np.allclose(cupy.asnumpy(p), e, rtol=1e-4, atol=1e-6) for p, e in zip(impl.params, expected))
    probe, probe_bytes = copy_probe(nbytes)
    calls = {**{k: v.step for k, v in built.items()}, "copy": probe}
    times, kernel_times = time_events(calls, repeats), time_events(calls, repeats, kernel_only=True)
    rows = tables.rows_from_times(times, built, ok, probe_bytes / times["copy"], nbytes,
                                  dict(kind="optimizer", name=f"adafactor-{case}", size=case, n=n, dtype="float32",
                                       threads=None, device=device_name()))
    _with_kernel_times(rows, kernel_times, nbytes, probe_bytes)
    del built
    cupy.get_default_memory_pool().free_all_blocks()
    return rows
