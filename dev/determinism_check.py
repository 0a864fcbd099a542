"""Runs one float64 Adam trajectory (AMSGrad, 7 tensors, 4 steps) under every (threads, ISA)
combination this machine has, in one process, and prints which tensors' bits differ from the
1-thread baseline run. fusedopt promises identical bits for all of them, so any difference is a
bug, or a machine that computes wrong (see "Open problem" in benchmarks/RESULTS.md).

    python dev/determinism_check.py [--rounds 10] [--torch]   # --torch: import torch first

Exit status 1 when a difference was seen."""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

import fusedopt
from fusedopt import _core

SHAPES = [(0,), (1,), (7,), (1023,), (300, 129), (40_001,), (13,)]


def trajectory(threads: int, isa: str):
    _core.set_num_threads(threads)
    _core.set_isa(isa)
    try:
        rng = np.random.default_rng(0)
        params = [rng.standard_normal(s) for s in SHAPES]
        opt = fusedopt.Adam(params, lr=0.01, amsgrad=True)
        for _ in range(4):
            opt.step([rng.standard_normal(s) for s in SHAPES])
        return params
    finally:
        _core.set_num_threads(_core.cpu_info()["num_procs"])
        _core.set_isa(_core.cpu_info()["available_isas"][0])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--torch", action="store_true", help="import torch first (as the test suite does)")
    args = ap.parse_args(argv)
    if args.torch:
        import torch  # noqa: F401
    info = _core.cpu_info()
    combos = [(t, isa) for isa in info["available_isas"] for t in sorted({1, info["num_procs"]})]
    reference = trajectory(1, "baseline")
    bad = 0
    for r in range(args.rounds):
        t0 = time.perf_counter()
        for threads, isa in combos:
            got = trajectory(threads, isa)
            differ = [i for i, (a, b) in enumerate(zip(got, reference)) if a.tobytes() != b.tobytes()]
            if differ:
                bad += 1
                i = differ[-1]
                ulps = np.abs(got[i].view(np.int64) - reference[i].view(np.int64)).max()
                print(f"round {r}: {threads} threads, {isa}: tensors {differ} differ "
                      f"({np.count_nonzero(got[i] != reference[i])} elements of tensor {i}, up to {ulps} ulps)")
        print(f"round {r}: {len(combos)} runs in {time.perf_counter() - t0:.2f} s", flush=True)
    print(f"{bad} of {args.rounds * len(combos)} runs differed from the 1-thread baseline run")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
