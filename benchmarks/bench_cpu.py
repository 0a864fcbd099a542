"""CPU benchmark of the optimizers: fusedopt vs in-place NumPy vs torch (default / foreach / fused)
vs a bandwidth probe with Adam's traffic, every optimizer, in one process, interleaved, medians.

    python benchmarks/bench_cpu.py [--threads 1 2] [--sizes 1e5 1e6 1e7 model200] [--repeats 20]
                                   [--json benchmarks/results_cpu.json]

The cases live in fusedopt.bench.suite (shared with `fusedopt bench`): each implementation's first
step is checked against fusedopt.reference before it is timed. Byte model: fp32 Adam reads p, g, m, v
and writes p, m, v = 28 bytes per param; "%ceil" is that GB/s over the probe's GB/s in the same rounds.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from fusedopt.bench import report, suite


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--sizes", nargs="+", default=["1e5", "1e6", "1e7", "model200"])
    ap.add_argument("--optimizers", nargs="+", default=list(suite.OPTIMIZERS), choices=list(suite.OPTIMIZERS))
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--json", default=None, help="write rows and machine info here")
    args = ap.parse_args(argv)
    rows = []
    for threads in args.threads:
        report.set_threads(threads)
        for size in args.sizes:
            for optimizer in args.optimizers:
                new = suite.optimizer_case(optimizer, size, np.float32, threads, suite.available_backends(),
                                           args.repeats)
                print(report.table(new), flush=True)
                rows += new
    return report.finish(rows, args.json, args.repeats)


if __name__ == "__main__":
    sys.exit(main())
