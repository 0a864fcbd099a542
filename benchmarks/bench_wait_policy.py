"""How the kernels' idle workers should wait between steps (issue 17): each policy in turn, in blocks of
steps inside one process (so the VM's slow drifts hit them alike), Adam float32 over one tensor, a pause
between steps (the rest of a training loop), quiet and with N busy processes:

    spin 1ms            spin for 1 ms of the worker's CPU time, then sleep
    spin 1ms + yield    the same, yielding the core every 64 checks (the default)
    + sleep after 2 misses   the same, but a worker that found two jobs in a row already claimed by the
                        caller (it was not running when they started) sleeps at once until it gets a chunk
    spin 5ms            spin 5 ms (about what OpenMP's default spin count takes here)
    passive             sleep at once (OMP_WAIT_POLICY=passive)
    1 thread            the step on the calling thread only, for scale

    python benchmarks/bench_wait_policy.py [--sizes 1e5 1e6 1e7] [--pauses 0.0005 0.005] [--load 1]
                                           [--blocks 8] [--block-steps 10] [--json PATH]

Median, p90 and worst of each policy's steps, and the share of the chunks the worker ran.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

import fusedopt
from fusedopt import _core
from fusedopt.bench import harness

NEVER = 1 << 30
POLICIES = {"spin 1ms": (1_000_000, False, NEVER), "spin 1ms + yield": (1_000_000, True, NEVER),
            "+ sleep after 2 misses": (1_000_000, True, 2), "spin 5ms": (5_000_000, False, NEVER),
            "passive": (0, False, NEVER), "1 thread": None}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="+", default=["1e5", "1e6", "1e7"])
    ap.add_argument("--pauses", type=float, nargs="+", default=[5e-4, 5e-3])
    ap.add_argument("--load", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--blocks", type=int, default=8)
    ap.add_argument("--block-steps", type=int, default=10)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    rows = []
    print(f"{'machine':7} {'pause':>6} {'n':>6}  {'policy':17} {'median ms':>9} {'p90':>8} {'worst':>8} {'workers':>8}")
    for load in sorted({0, args.load}):
        with harness.busy_processes(load):
            for pause in args.pauses:
                for size in args.sizes:
                    n = int(float(size))
                    rng = np.random.default_rng(0)
                    p = rng.standard_normal(n, dtype=np.float32)
                    g = rng.standard_normal(n, dtype=np.float32)
                    opt = fusedopt.Adam([p], lr=1e-3)
                    samples = {name: [] for name in POLICIES}
                    chunks = {name: [0, 0] for name in POLICIES}
                    names = list(POLICIES)
                    for block in range(args.blocks):
                        for name in names[block % len(names):] + names[:block % len(names)]:
                            policy = POLICIES[name]
                            fusedopt.set_num_threads(1 if policy is None else args.threads)
                            if policy is not None:
                                _core._set_worker_wait(*policy)
                            opt.step([g])  # the policy takes effect from the worker's next wait
                            before = _core._pool_stats()
                            for _ in range(args.block_steps):
                                time.sleep(pause)
                                samples[name].append(harness.host_timer(lambda: opt.step([g])))
                            after = _core._pool_stats()
                            chunks[name][0] += after["chunks_by_workers"] - before["chunks_by_workers"]
                            chunks[name][1] += after["chunks"] - before["chunks"]
                    for name in names:
                        t = harness.Timing(samples[name])
                        s = t.spread()
                        share = chunks[name][0] / chunks[name][1] if chunks[name][1] else None
                        rows.append(dict(load=load, pause_s=pause, n=n, policy=name, threads=args.threads,
                                         ms=1e3 * t, **s, worker_share=share))
                        print(f"{'loaded' if load else 'quiet':7} {1e3 * pause:5.1f}ms {size:>6}  {name:22} {1e3 * t:9.3f} "
                              f"{s['ms_p90']:8.3f} {s['ms_max']:8.3f} "
                              f"{'' if share is None else f'{100 * share:7.0f}%'}", flush=True)
    _core._set_worker_wait(*POLICIES["spin 1ms + yield"])  # the default again
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": harness.machine_info(), "busy_processes": args.load, "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
