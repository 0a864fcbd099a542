"""GPU benchmark: fusedopt's CUDA Adam and SGD-momentum vs torch (fused=True, foreach=True) vs a
CuPy elementwise version, fp32, timed with CUDA events after warm-up, interleaved, medians; GB/s by
the byte model and the fraction of a device-to-device copy measured in the same rounds.

    python benchmarks/bench_gpu.py [--sizes 1e6 1e7 1e8 model200] [--repeats 20] [--json PATH]

Every implementation's first step is checked against fusedopt.reference (on a sample of elements).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys

import numpy as np

import fusedopt
from fusedopt import reference
from fusedopt.bench import harness, suite

KW = {"adam": dict(lr=1e-3), "sgd": dict(lr=0.01, momentum=0.9)}


def gpu_time(steps, repeats, warmup=3):
    import cupy

    names = list(steps)
    for _ in range(warmup):
        for n in names:
            steps[n]()
    cupy.cuda.Device().synchronize()
    samples = {n: [] for n in names}
    start, end = cupy.cuda.Event(), cupy.cuda.Event()
    for r in range(repeats):
        for n in names[r % len(names):] + names[:r % len(names)]:
            start.record()
            steps[n]()
            end.record()
            end.synchronize()
            samples[n].append(cupy.cuda.get_elapsed_time(start, end) * 1e-3)
    return {n: statistics.median(s) for n, s in samples.items()}


def build(optimizer, shapes):
    import cupy
    import torch

    rng = np.random.default_rng(0)
    host_p = [rng.standard_normal(s, dtype=np.float32) for s in shapes]
    host_g = [rng.standard_normal(s, dtype=np.float32) for s in shapes]
    impls = {}
    ps = [cupy.asarray(p) for p in host_p]
    gs = [cupy.asarray(g) for g in host_g]
    opt = getattr(fusedopt, suite.impls.TORCH_CLASS[optimizer])(ps, **KW[optimizer])
    impls["fusedopt-cuda"] = (lambda: opt.step(gs), ps)
    for variant, flags in (("torch-fused", dict(fused=True)), ("torch-foreach", dict(foreach=True))):
        ts = [torch.tensor(p, device="cuda", requires_grad=True) for p in host_p]
        for t, g in zip(ts, host_g):
            t.grad = torch.tensor(g, device="cuda")
        topt = getattr(torch.optim, suite.impls.TORCH_CLASS[optimizer])(ts, **KW[optimizer], **flags)
        impls[variant] = (topt.step, [cupy.asarray(t.detach()) for t in ts])
    if optimizer == "adam":
        cp = [cupy.asarray(p) for p in host_p]
        cm = [cupy.zeros_like(p) for p in cp]
        cv = [cupy.zeros_like(p) for p in cp]
        step = cupy.ElementwiseKernel(
            "T g, T c1, T c2", "T p, T m, T v",
            "m = 0.9f * m + 0.1f * g; v = 0.999f * v + 0.001f * g * g; p -= c1 * m / (sqrt(v) / c2 + 1e-8f);",
            "cupy_adam")
        count = [0]

        def cupy_step():
            count[0] += 1
            c1 = np.float32(1e-3 / (1 - 0.9 ** count[0]))
            c2 = np.float32(np.sqrt(1 - 0.999 ** count[0]))
            for p, g, m, v in zip(cp, gs, cm, cv):
                step(g, c1, c2, p, m, v)

        impls["cupy-elementwise"] = (cupy_step, cp)
    return impls, host_p, host_g


def check(optimizer, impls, host_p, host_g):
    import cupy

    idx = np.arange(0, host_p[0].size, max(1, host_p[0].size // 100_000))
    p = host_p[0][idx].astype(np.float64)
    getattr(reference, optimizer)(p, host_g[0][idx].astype(np.float64), {}, **KW[optimizer])
    ok = {}
    for name, (step, params) in impls.items():
        step()
        got = cupy.asnumpy(params[0])[idx]
        ok[name] = bool(np.allclose(got, p, rtol=1e-4, atol=1e-6))
    return ok


def main(argv=None):
    import cupy

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="+", default=["1e6", "1e7", "1e8", "model200"])
    ap.add_argument("--optimizers", nargs="+", default=["adam", "sgd"])
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    rows = []
    for size in args.sizes:
        shapes = suite.model_shapes(100_000_000, int(size[5:])) if size.startswith("model") else [(int(float(size)),)]
        n = sum(s[0] for s in shapes)
        src, dst = cupy.empty(n * 7, cupy.float32), cupy.empty(n * 7, cupy.float32)  # copy as much as Adam moves
        for optimizer in args.optimizers:
            impls, host_p, host_g = build(optimizer, shapes)
            ok = check(optimizer, impls, host_p, host_g)
            times = gpu_time({**{k: v[0] for k, v in impls.items()}, "d2d-copy": lambda: dst.__setitem__(..., src)},
                             args.repeats)
            copy_bw = 2 * src.nbytes / times["d2d-copy"]  # read + write
            nbytes = n * harness.bytes_per_param(optimizer, KW[optimizer], 4)
            for name in impls:
                t = times[name]
                row = dict(size=size, n=n, optimizer=optimizer, backend=name, ms=t * 1e3, gbs=nbytes / t / 1e9,
                           copy_gbs=copy_bw / 1e9, frac_copy=nbytes / t / copy_bw, agrees_with_reference=ok[name],
                           speedup_fusedopt=t / times["fusedopt-cuda"])
                rows.append(row)
                print(f"{size:>9} {optimizer:5} {name:17} {row['ms']:9.3f} ms {row['gbs']:8.1f} GB/s "
                      f"{100 * row['frac_copy']:5.1f}% of copy ({row['copy_gbs']:.0f} GB/s)  fusedopt is "
                      f"{row['speedup_fusedopt']:5.2f}x{'' if ok[name] else '  MISMATCH'}", flush=True)
            del impls
            cupy.get_default_memory_pool().free_all_blocks()
    if args.json:
        info = harness.machine_info()
        info["gpu"] = cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()
        with open(args.json, "w") as f:
            json.dump({"machine": info, "repeats": args.repeats, "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
