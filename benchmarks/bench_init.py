"""Initializer benchmark: fusedopt vs NumPy's Generator vs torch (uniform_, normal_, xavier_normal_,
kaiming_uniform_) on 1e7 float32 elements, 1 and 2 threads, in one process, interleaved, medians, with
a write-only probe (the same driver storing a constant) as the bandwidth ceiling.

    python benchmarks/bench_init.py [--threads 1 2] [--n 1e7] [--repeats 20] [--json PATH]

Each implementation's output is checked first (sample mean and std against the target).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from fusedopt.bench import report, suite


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--n", type=float, default=1e7)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    cases = [lambda threads, name=name: suite.initializer_case(name, int(args.n), np.float32, threads,
                                                               suite.available_backends(), args.repeats)
             for name in suite.INITIALIZERS]
    return report.run_cases(args.threads, cases, args.json, args.repeats)


if __name__ == "__main__":
    sys.exit(main())
