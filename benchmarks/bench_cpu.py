"""CPU benchmark of the optimizers: fusedopt vs in-place NumPy vs torch (default / foreach / fused)
vs a bandwidth probe with Adam's traffic, every optimizer, in one process, interleaved, medians.

    python benchmarks/bench_cpu.py [--threads 1 2] [--sizes 1e5 1e6 1e7 model200] [--repeats 20]
                                   [--json benchmarks/results_cpu.json] [--baseline FOLDER]

The cases live in fusedopt.bench.suite (shared with `fusedopt bench`): each implementation's first
step is checked against fusedopt.reference before it is timed. Byte model: fp32 Adam reads p, g, m, v
and writes p, m, v = 28 bytes per param; "%ceil" is that GB/s over the probe's GB/s in the same rounds.

--baseline FOLDER adds "fusedopt-baseline": another build of fusedopt installed in FOLDER as the package
``fusedopt_old`` (a renamed copy of an older site-packages/fusedopt), timed in the same rounds, to show a
change did not slow the kernels.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from fusedopt.bench import harness, impls, report, suite


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--sizes", nargs="+", default=["1e5", "1e6", "1e7", "model200"])
    ap.add_argument("--optimizers", nargs="+", default=list(suite.OPTIMIZERS), choices=list(suite.OPTIMIZERS))
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--json", default=None, help="write rows and machine info here")
    ap.add_argument("--baseline", default=None, help="folder holding an older build as the package fusedopt_old")
    args = ap.parse_args(argv)
    extra = None
    if args.baseline:
        old = harness.baseline_module(args.baseline)

        def baseline(optimizer, kwargs, params, grads):
            params = [p.copy() for p in params]
            opt = getattr(old, suite.TORCH_CLASS[optimizer])(params, **kwargs)
            return impls.Impl(lambda: opt.step(list(grads)), params)

        extra = {"fusedopt-baseline": baseline}
    cases = [lambda threads, size=size, optimizer=optimizer: suite.optimizer_case(
        optimizer, size, np.float32, threads, suite.available_backends(), args.repeats, extra)
        for size in args.sizes for optimizer in args.optimizers]
    return report.run_cases(args.threads, cases, args.json, args.repeats)


if __name__ == "__main__":
    sys.exit(main())
