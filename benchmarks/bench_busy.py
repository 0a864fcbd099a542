"""A step on a busy machine (issue 17): Adam float32 steps at 1e5, 1e6 and 1e7 params, one after the
other with a short pause between them (what a training loop does), on 1 and 2 threads, with the
machine quiet and with N busy processes (fusedopt.bench.harness.busy_processes, as `fusedopt bench
--load N`): median, p90 and worst of each run of steps. Then the initializers (uniform, normal) at 1e7
float32 against torch's in-place fills, quiet and loaded, with the write-bandwidth probe.

    python benchmarks/bench_busy.py [--steps 60] [--sizes 1e5 1e6 1e7] [--load 1] [--torch] [--json PATH]
                                    [--baseline FOLDER] [--no-fills]

Each configuration is one run of --steps steps of one implementation (not interleaved: a step's
latency on a loaded machine is what is measured, and another library's threads spinning between our
steps would be part of it). To compare two builds, run this script once per build, alternately, never
both in one process (their threads would compete for the same cores): --baseline FOLDER takes the Adam
steps from another build installed in FOLDER as the package ``fusedopt_old`` (as bench_cpu.py does);
the fills are always this build's.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np


import fusedopt
from fusedopt.bench import harness, suite


def adam_steps(lib, n: int, threads: int, steps: int, pause: float, backend: str) -> harness.Timing:
    """Seconds per step of `steps` Adam steps over one tensor of n params, a pause between steps."""
    rng = np.random.default_rng(0)
    p = rng.standard_normal(n, dtype=np.float32)
    g = rng.standard_normal(n, dtype=np.float32)
    if backend == "fusedopt":
        lib.set_num_threads(threads)
        opt = lib.Adam([p], lr=1e-3)
        step = lambda: opt.step([g])  # noqa: E731
    else:
        import torch

        torch.set_num_threads(threads)
        t = torch.from_numpy(p).requires_grad_(True)
        t.grad = torch.from_numpy(g)
        step = torch.optim.Adam([t], lr=1e-3, fused=True).step
    for _ in range(5):
        step()
    stats = getattr(lib._core, "_pool_stats", None)  # a build before issue 17 has none
    before = stats() if stats else None
    samples = []
    for _ in range(steps):
        time.sleep(pause)
        samples.append(harness.host_timer(step))
    timing = harness.Timing(samples)
    after = stats() if stats else None
    # the share of the parallel steps' chunks that the workers ran (None: not known, or serial steps)
    done = after["chunks"] - before["chunks"] if stats else 0
    timing.worker_share = (after["chunks_by_workers"] - before["chunks_by_workers"]) / done if done else None
    return timing


def fill_rows(threads: int, repeats: int) -> list:
    from fusedopt.bench import report

    report.set_threads(threads)
    rows = []
    for name in ("uniform", "normal"):
        rows += suite.initializer_case(name, 10_000_000, np.float32, threads, suite.available_backends(), repeats)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--sizes", nargs="+", default=["1e5", "1e6", "1e7"])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--load", type=int, default=1, help="busy processes of the loaded runs")
    ap.add_argument("--pause", type=float, default=5e-4, help="seconds between steps")
    ap.add_argument("--torch", action="store_true", help="also torch.optim.Adam(fused=True)")
    ap.add_argument("--fill-repeats", type=int, default=15)
    ap.add_argument("--json", default=None)
    ap.add_argument("--baseline", default=None, help="folder holding another build as the package fusedopt_old")
    ap.add_argument("--no-fills", action="store_true", help="only the Adam steps")
    args = ap.parse_args(argv)
    lib = fusedopt
    if args.baseline:
        lib = harness.baseline_module(args.baseline)
    backends = ["fusedopt"] + (["torch-fused"] if args.torch else [])
    rows = []
    print(f"Adam steps: {lib.__name__} from {lib.__file__}, isa {lib.cpu_info()['isa']}")
    print(f"{'machine':8} {'backend':12} {'threads':>7} {'n':>9} {'median ms':>10} {'p90 ms':>9} {'worst ms':>9} "
          "workers' share")
    for load in sorted({0, args.load}):
        with harness.busy_processes(load):
            for size in args.sizes:
                for threads in args.threads:
                    for backend in backends:
                        t = adam_steps(lib, int(float(size)), threads, args.steps, args.pause, backend)
                        s = t.spread()
                        row = dict(kind="adam-latency", load=load, backend=backend, threads=threads, n=int(float(size)),
                                   ms=1e3 * t, **s, worker_share=getattr(t, "worker_share", None))
                        rows.append(row)
                        share = "" if row["worker_share"] is None else f"{100 * row['worker_share']:6.0f}%"
                        print(f"{'loaded' if load else 'quiet':8} {backend:12} {threads:7d} {size:>9} {row['ms']:10.3f} "
                              f"{s['ms_p90']:9.3f} {s['ms_max']:9.3f} {share}", flush=True)
            for row in [] if args.no_fills else fill_rows(max(args.threads), args.fill_repeats):
                row["load"] = load
                rows.append(row)
                ceil = "" if row["frac_ceiling"] is None else f", {100 * row['frac_ceiling']:.1f}% of write bandwidth"
                print(f"{'loaded' if load else 'quiet':8} {row['name']:8} {row['backend']:9} {row['threads']}T 1e7: "
                      f"{row['ms']:.3f} ms (p90 {row['ms_p90']:.3f}), {row['gitems']:.3f} Gelem/s{ceil}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": harness.machine_info(), "adam_steps_from": lib.__file__, "steps": args.steps,
                       "pause_s": args.pause,
                       "busy_processes": args.load, "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
