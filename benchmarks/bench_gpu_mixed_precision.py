"""GPU benchmark of Adam with 16-bit storage (issue 16): fusedopt's one-launch ``mixed_step`` against
torch's fused CUDA Adam on the same dtypes, and against a device-to-device copy (the bandwidth ceiling),
CUDA events around each step, interleaved, medians. bfloat16 is uint16 bits on the fusedopt side (CuPy
has no bfloat16) and torch.bfloat16 on torch's.

    bf16         params, grads, exp_avg, exp_avg_sq in bfloat16 (14 bytes per param)
    fp16         the same in float16
    bf16-master  bfloat16 params and grads, float32 master copy and states (28 bytes)
    bf16-stochastic  bf16, rounding stochastically (fusedopt only)

    python benchmarks/bench_gpu_mixed_precision.py [--sizes 1e8] [--layouts ...] [--repeats 20] [--json FILE]
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

import fusedopt
from fusedopt import reference
from fusedopt.bench import gpu, report
from fusedopt.bench.impls import Impl
from fusedopt.bench.tables import rows_from_times

LR = 1e-3
BYTES = {"bf16": 14, "fp16": 14, "bf16-master": 28, "bf16-stochastic": 14}


def bfloat16_bits(x: np.ndarray) -> np.ndarray:
    """float32 values as bfloat16 bits (uint16), rounded to nearest even (NaN-free data)."""
    u = x.astype(np.float32).view(np.uint32).astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def from_bits(bits: np.ndarray) -> np.ndarray:
    return (bits.astype(np.uint32) << 16).view(np.float32)


def layout_case(layout: str, size: str, repeats: int):
    import cupy

    n = int(float(size))
    rng = np.random.default_rng(0)
    p32, g32 = rng.standard_normal(n, np.float32), rng.standard_normal(n, np.float32)
    half = layout == "fp16"
    host_p = p32.astype(np.float16) if half else bfloat16_bits(p32)
    host_g = g32.astype(np.float16) if half else bfloat16_bits(g32)
    as_float = (lambda a: a.astype(np.float64)) if half else (lambda a: from_bits(a).astype(np.float64))
    expected = as_float(host_p[: min(n, 100_000)])
    reference.adam(expected, as_float(host_g[: min(n, 100_000)]), {}, lr=LR)

    master = layout == "bf16-master"
    p, g = cupy.asarray(host_p), cupy.asarray(host_g)
    state = np.float32 if master else host_p.dtype
    m, v = cupy.zeros(n, state), cupy.zeros(n, state)
    copies = [cupy.asarray(from_bits(host_p))] if master else None
    seed = 0 if layout == "bf16-stochastic" else None
    counter = [0]

    def fusedopt_step():
        counter[0] += 1
        fusedopt.functional.adam([p], [g], [m], [v], step=counter[0], lr=LR, master_params=copies, rounding_seed=seed)

    built = {"fusedopt-cuda": Impl(fusedopt_step, [p])}
    if gpu.torch_cuda_available() and layout in ("bf16", "fp16", "bf16-master"):
        import torch

        dtype = torch.float16 if half else torch.bfloat16
        if master:  # torch's way: a fused step on float32 copies, then a cast into the bfloat16 params
            tp = torch.from_numpy(from_bits(host_p)).cuda().requires_grad_(True)
            tp.grad = torch.from_numpy(from_bits(host_g)).cuda()
            low = torch.from_numpy(host_p.view(np.int16)).cuda().view(torch.bfloat16)
            opt = torch.optim.Adam([tp], lr=LR, fused=True)

            def torch_step():
                opt.step()
                with torch.no_grad():
                    low.copy_(tp)
            built["torch-fused+copy"] = Impl(torch_step, [low.view(torch.int16)])
        else:
            tp = torch.from_numpy(host_p.view(np.int16)).cuda().view(dtype).requires_grad_(True)
            tp.grad = torch.from_numpy(host_g.view(np.int16)).cuda().view(dtype)
            opt = torch.optim.Adam([tp], lr=LR, fused=True)
            built["torch-fused"] = Impl(opt.step, [tp.detach().view(torch.int16)])
    ok = {}
    for name, impl in built.items():
        impl.step()
        got = impl.params[0]
        got = cupy.asnumpy(got) if not hasattr(got, "cpu") else got.cpu().numpy()
        got = got.view(np.float16) if half else from_bits(got.view(np.uint16))
        spacing = 2.0**-10 if half else 2.0**-7
        ok[name] = bool(np.allclose(got[: expected.size].astype(np.float64), expected, rtol=2 * spacing, atol=1e-6))
    probe, probe_bytes = gpu.copy_probe(BYTES[layout] * n)
    times = gpu.time_events({**{k: v.step for k, v in built.items()}, "copy": probe}, repeats)
    return rows_from_times(times, built, ok, probe_bytes / times["copy"], BYTES[layout] * n,
                           dict(kind="optimizer", name=f"adam-{layout}", size=size, n=n,
                                dtype="float16" if half else "bfloat16", threads=None, device=gpu.device_name()))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="+", default=["1e8"])
    ap.add_argument("--layouts", nargs="+", default=list(BYTES), choices=list(BYTES))
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    if not gpu.cuda_available():
        print("no CUDA device: nothing to measure", file=sys.stderr)
        return 2
    rows = []
    for size in args.sizes:
        for layout in args.layouts:
            new = layout_case(layout, size, args.repeats)
            print(report.table(new), flush=True)
            rows += new
    return report.finish(rows, args.json, args.repeats)


if __name__ == "__main__":
    sys.exit(main())
