"""Initializer benchmark: fusedopt vs NumPy's Generator vs torch (normal_, uniform_, xavier_normal_,
kaiming_uniform_) on 1e7 float32 elements, 1 and 2 threads, in one process, interleaved, medians,
with a write-only probe (the same driver writing a constant) as the bandwidth ceiling.

    python benchmarks/bench_init.py [--threads 1 2] [--n 1e7] [--repeats 20] [--json PATH]

Each implementation's output is checked first (mean and std of its sample against the target).
"""

from __future__ import annotations

import argparse
import json
import math
import sys

import numpy as np

import fusedopt
from fusedopt import _core, init
from fusedopt.bench import harness

SHAPE_2D = (2500, 4000)  # 1e7 elements, a weight matrix for the fan-based initializers


def implementations(n, have_torch):
    out = np.empty(SHAPE_2D, np.float32)
    rng = np.random.default_rng(0)
    g = init.Generator(0)
    fan_in, fan_out = SHAPE_2D[1], SHAPE_2D[0]
    cases = {
        # name: (target mean, target std, {impl: (callable, array it fills)})
        "uniform": (0.5, math.sqrt(1 / 12), {
            "fusedopt": (lambda: init.uniform_(out, generator=g), out),
            "numpy": (lambda: rng.random(out.shape, np.float32, out=out), out)}),
        "normal": (0.0, 1.0, {
            "fusedopt": (lambda: init.normal_(out, generator=g), out),
            "numpy": (lambda: rng.standard_normal(out.shape, np.float32, out=out), out)}),
        "xavier_normal": (0.0, math.sqrt(2 / (fan_in + fan_out)), {
            "fusedopt": (lambda: init.xavier_normal_(out, generator=g), out)}),
        "kaiming_uniform": (0.0, math.sqrt(2) / math.sqrt(fan_in), {
            "fusedopt": (lambda: init.kaiming_uniform_(out, generator=g), out)}),
    }
    if have_torch:
        import torch

        t = torch.from_numpy(out)
        cases["uniform"][2]["torch"] = (lambda: t.uniform_(), out)
        cases["normal"][2]["torch"] = (lambda: t.normal_(), out)
        cases["xavier_normal"][2]["torch"] = (lambda: torch.nn.init.xavier_normal_(t), out)
        cases["kaiming_uniform"][2]["torch"] = (lambda: torch.nn.init.kaiming_uniform_(t, a=0), out)
    return cases


def agrees(fn, arr, mean, std) -> bool:
    fn()
    sample = arr.ravel()[:: 97].astype(np.float64)
    return bool(abs(sample.mean() - mean) < 6 * std / math.sqrt(sample.size) and abs(sample.std() / std - 1) < 0.02)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    try:
        import torch
        have_torch = True
    except ImportError:
        have_torch = False
    n = SHAPE_2D[0] * SHAPE_2D[1]
    rows = []
    for threads in args.threads:
        fusedopt.set_num_threads(threads)
        if have_torch:
            torch.set_num_threads(threads)
        probe_arr = [np.empty(n, np.float32)]
        for name, (mean, std, impls) in implementations(n, have_torch).items():
            ok = {k: agrees(fn, arr, mean, std) for k, (fn, arr) in impls.items()}
            times = harness.time_interleaved({**{k: fn for k, (fn, _) in impls.items()},
                                              "write-probe": lambda: _core.stream_write(probe_arr, 0.0)},
                                             args.repeats)
            ceiling = 4 * n / times["write-probe"]
            for k in impls:
                t = times[k]
                row = dict(threads=threads, init=name, impl=k, ms=t * 1e3, gelems=n / t / 1e9, gbs=4 * n / t / 1e9,
                           ceiling_gbs=ceiling / 1e9, frac_write_bw=4 * n / t / ceiling, agrees=ok[k],
                           speedup_fusedopt=t / times["fusedopt"])
                rows.append(row)
                print(f"{threads}T {name:16} {k:9} {row['ms']:8.2f} ms {row['gelems']:6.3f} Gelem/s "
                      f"{100 * row['frac_write_bw']:5.1f}% of write bw ({row['ceiling_gbs']:.1f} GB/s)  "
                      f"fusedopt is {row['speedup_fusedopt']:6.2f}x{'' if ok[k] else '  MISMATCH'}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": harness.machine_info(), "n": n, "repeats": args.repeats, "rows": rows}, f, indent=1)
    return 0 if all(r["agrees"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
