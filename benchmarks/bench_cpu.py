"""CPU benchmark: fusedopt vs in-place NumPy vs torch (default / foreach / fused) vs a bandwidth
probe with Adam's traffic, for every optimizer, in one process, interleaved, medians.

    python benchmarks/bench_cpu.py [--threads 1 2] [--sizes 1e5 1e6 1e7 model200] [--repeats 20]
                                   [--json benchmarks/results_cpu.json]

Each implementation's first step is checked against fusedopt.reference before it is timed.
Byte model: fp32 Adam reads p, g, m, v and writes p, m, v = 28 bytes per param (see
fusedopt.bench.harness.bytes_per_param); "%ceil" is that GB/s over the probe's GB/s in the same run.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

import fusedopt
from fusedopt import reference
from fusedopt.bench import harness, impls

OPTIMIZERS = {
    "sgd": dict(lr=0.01, momentum=0.9),
    "adagrad": dict(lr=0.01),
    "rmsprop": dict(lr=0.01),
    "adam": dict(lr=1e-3),
    "adamw": dict(lr=1e-3, weight_decay=1e-2),
}
REFERENCE = {"sgd": reference.sgd, "adagrad": reference.adagrad, "rmsprop": reference.rmsprop,
             "adam": reference.adam, "adamw": reference.adamw}


def model_shapes(total: int, count: int = 200, seed: int = 0):
    """A model-like list: sizes log-uniform over three decades, scaled to ~total elements."""
    rng = np.random.default_rng(seed)
    sizes = np.exp(rng.uniform(np.log(1e3), np.log(1e6), count))
    sizes = np.maximum(1, np.round(sizes * total / sizes.sum())).astype(int)
    return [(int(s),) for s in sizes]


def shapes_for(size: str):
    if size.startswith("model"):
        return model_shapes(10_000_000, int(size[5:]))
    return [(int(float(size)),)]


def reference_after_one_step(optimizer, params, grads):
    out = []
    for p, g in zip(params, grads):
        p64 = p.astype(np.float64)
        REFERENCE[optimizer](p64, g.astype(np.float64), {}, **OPTIMIZERS[optimizer])
        out.append(p64)
    return out


def agrees(impl, expected) -> bool:
    return all(np.allclose(p, e, rtol=1e-4, atol=1e-6) for p, e in zip(impl.params, expected))


def build(optimizer, params, grads, have_torch):
    kw = OPTIMIZERS[optimizer]
    built = {"fusedopt": impls.fusedopt_impl(optimizer, kw, params, grads),
             "numpy": impls.numpy_impl(optimizer, kw, params, grads)}
    if have_torch:
        for variant in ("default", "foreach", "fused"):
            impl = impls.torch_impl(optimizer, kw, params, grads, variant)
            if impl is not None:
                built[f"torch-{variant}"] = impl
    return built


def run(threads, sizes, optimizers, repeats):
    try:
        import torch
        have_torch = True
    except ImportError:
        have_torch = False
    rows = []
    for n_threads in threads:
        fusedopt.set_num_threads(n_threads)
        if have_torch:
            torch.set_num_threads(n_threads)
        for size in sizes:
            shapes = shapes_for(size)
            n = sum(int(np.prod(s)) for s in shapes)
            params, grads = impls.make_data(shapes, np.float32)
            probe, probe_bytes = harness.stream_probe(n)
            for optimizer in optimizers:
                built = build(optimizer, params, grads, have_torch)
                expected = reference_after_one_step(optimizer, params, grads)
                ok = {}
                for name, impl in built.items():
                    impl.step()
                    ok[name] = agrees(impl, expected)
                times = harness.time_interleaved({**{k: v.step for k, v in built.items()}, "stream": probe}, repeats)
                ceiling = probe_bytes / times["stream"]
                per_param = harness.bytes_per_param(optimizer, OPTIMIZERS[optimizer], 4)
                for name in built:
                    t = times[name]
                    rows.append(dict(threads=n_threads, size=size, n=n, optimizer=optimizer, impl=name,
                                     ms=t * 1e3, gparams=n / t / 1e9, gbs=n * per_param / t / 1e9,
                                     ceiling_gbs=ceiling / 1e9, frac_ceiling=n * per_param / t / ceiling,
                                     agrees_with_reference=ok[name],
                                     speedup_fusedopt=t / times["fusedopt"]))
                print_rows(rows[-len(built):])
                del built
    return rows


def print_rows(rows):
    for r in rows:
        flag = "" if r["agrees_with_reference"] else "  MISMATCH vs reference"
        print(f"{r['threads']}T {r['size']:>9} {r['optimizer']:8} {r['impl']:14} {r['ms']:9.3f} ms "
              f"{r['gparams']:7.3f} Gparam/s {r['gbs']:7.2f} GB/s {100 * r['frac_ceiling']:6.1f}%ceil "
              f"(ceil {r['ceiling_gbs']:.2f} GB/s)  fusedopt is {r['speedup_fusedopt']:6.2f}x{flag}", flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--sizes", nargs="+", default=["1e5", "1e6", "1e7", "model200"])
    ap.add_argument("--optimizers", nargs="+", default=list(OPTIMIZERS), choices=list(OPTIMIZERS))
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--json", default=None, help="write rows and machine info here")
    args = ap.parse_args(argv)
    rows = run(args.threads, args.sizes, args.optimizers, args.repeats)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": harness.machine_info(), "repeats": args.repeats, "rows": rows}, f, indent=1)
    return 0 if all(r["agrees_with_reference"] for r in rows if r["impl"] == "fusedopt") else 1


if __name__ == "__main__":
    sys.exit(main())
