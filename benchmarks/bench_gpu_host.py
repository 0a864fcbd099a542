"""Host time of one CUDA optimizer step, with the kernel launch replaced by a no-op: what fusedopt's
Python and bindings cost per ``Adam.step`` at 200 and 2000 tensors (issue 18's targets: at most 15 and
30 µs per steady step). Runs with CuPy on a GPU machine, or on any machine with the host emulation
of CuPy (``PYTHONPATH=tests/fake_cupy``), where the streams, events and copies are Python stand-ins.

    python benchmarks/bench_gpu_host.py [--tensors 200 2000] [--steps 200] [--repeats 15]
                                        [--baseline /path/to/folder/with/fusedopt_old] [--json FILE]

Two cases, interleaved, medians of per-block means:
* ``steady``: the same grads arrays every step (a training loop that writes its grads in place, or a
  captured step's static grads): nothing is checked again;
* ``fresh``: new grads arrays every step (cycling through 4 lists at other addresses, as a loop that
  makes new gradients each step): the grads are checked and the device table's grads row is
  rewritten by one asynchronous copy.
--baseline adds the same cases from another build, installed as ``fusedopt_old`` in that folder."""

from __future__ import annotations

import argparse
import importlib
import json
import statistics
import time

import numpy as np

from fusedopt.bench import harness

TARGETS_US = {200: 15.0, 2000: 30.0}


class _NoOpKernel:
    def __call__(self, grid, block, args, **kwargs):
        pass


def no_op_launches(module) -> None:
    """Every optimizer kernel of ``module``'s CUDA backend becomes a no-op (the arguments are still built)."""
    backend = importlib.import_module(f"{module.__name__}.backends.cuda")
    backend._step_kernel = lambda *args, **kwargs: _NoOpKernel()


def cases(module, cupy, n_tensors: int, size: int, tag: str):
    rng = np.random.default_rng(0)
    params = [cupy.asarray(rng.standard_normal(size).astype(np.float32)) for _ in range(n_tensors)]
    grad_sets = [[cupy.asarray(rng.standard_normal(size).astype(np.float32)) for _ in range(n_tensors)]
                 for _ in range(4)]
    steady_opt, fresh_opt = module.Adam(params, lr=1e-3), module.Adam([p.copy() for p in params], lr=1e-3)
    steady_opt.step(grad_sets[0])
    fresh_opt.step(grad_sets[0])
    count = [0]

    def steady():
        steady_opt.step(grad_sets[0])

    def fresh():
        count[0] += 1
        fresh_opt.step(grad_sets[count[0] % 4])

    return {f"{tag}steady": steady, f"{tag}fresh": fresh}


def time_block(fn, steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - start) / steps * 1e6


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tensors", type=int, nargs="+", default=[200, 2000])
    ap.add_argument("--size", type=int, default=16, help="elements per tensor (no kernel runs)")
    ap.add_argument("--steps", type=int, default=200, help="steps per timed block")
    ap.add_argument("--repeats", type=int, default=15, help="timed blocks per case, interleaved")
    ap.add_argument("--baseline", default=None)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    import cupy

    modules = harness.builds(args.baseline)
    for module, _ in modules:
        no_op_launches(module)
    rows = []
    print(f"cupy {cupy.__version__}; kernel launches replaced by no-ops")
    print(f"{'tensors':>8} {'case':>12} {'us/step':>9} {'q1':>8} {'q3':>8} {'target':>8}")
    for n in args.tensors:
        calls = {}
        for module, tag in modules:
            calls.update(cases(module, cupy, n, args.size, tag))
        for fn in calls.values():  # warm-up: compiles nothing, fills caches
            time_block(fn, 10)
        samples = {name: [] for name in calls}
        for _ in range(args.repeats):
            for name, fn in calls.items():
                samples[name].append(time_block(fn, args.steps))
        for name, values in samples.items():
            q1, median, q3 = statistics.quantiles(values, n=4)
            target = TARGETS_US.get(n) if name.endswith("steady") else None
            verdict = "" if target is None else f"{target:.0f} {'hit' if median <= target else 'MISS'}"
            print(f"{n:>8} {name:>12} {median:>9.1f} {q1:>8.1f} {q3:>8.1f} {verdict:>8}")
            rows.append({"tensors": n, "case": name, "us_per_step": median, "q1": q1, "q3": q3,
                         "target_us": target, "samples": values})
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"cupy": cupy.__version__, "size": args.size, "steps": args.steps, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
