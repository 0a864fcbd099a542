"""Host cost of one optimizer step on tiny tensors, where the arithmetic is nothing and the Python
and binding work is everything: ``fusedopt.Adam.step`` (the prepared plan) vs
``fusedopt.functional.adam`` on the same arrays, in one process, interleaved, medians.

    python benchmarks/bench_step_overhead.py [--tensors 1 200] [--size 16] [--repeats 2000]
                                             [--grad-sets 1] [--baseline /path/to/folder/with/fusedopt_old]

--baseline adds the same two calls from another build of fusedopt, installed as the package
``fusedopt_old`` in that folder (a copy of an older site-packages/fusedopt, renamed), so a before/after
comparison runs in the same process on the same data."""

from __future__ import annotations

import argparse
import json

import numpy as np

from fusedopt.bench import harness


def cases(module, params, grad_sets, tag):
    """Each call takes the next of ``grad_sets`` (lists of grads at other addresses), as a training
    loop that makes new gradients every step does."""
    opt = module.Adam(params[0], lr=1e-3)
    state = [(np.zeros_like(p), np.zeros_like(p)) for p in params[1]]
    m, v = [s[0] for s in state], [s[1] for s in state]
    count = [0, 0]

    def functional():
        count[0] += 1
        module.functional.adam(params[1], grad_sets[count[0] % len(grad_sets)], m, v, step=count[0], lr=1e-3)

    def step():
        count[1] += 1
        opt.step(grad_sets[count[1] % len(grad_sets)])

    return {f"{tag}Adam.step": step, f"{tag}functional.adam": functional}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tensors", type=int, nargs="+", default=[1, 200])
    ap.add_argument("--size", type=int, default=16, help="elements per tensor")
    ap.add_argument("--repeats", type=int, default=2000)
    ap.add_argument("--grad-sets", type=int, default=1,
                    help="cycle through this many lists of grads (2 or more: new addresses at every step)")
    ap.add_argument("--baseline", default=None)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    modules = harness.builds(args.baseline)
    rng = np.random.default_rng(0)
    rows = []
    print(f"{'tensors':>8} {'call':>22} {'us/step':>9}")
    for n in args.tensors:
        grad_sets = [[rng.standard_normal(args.size).astype(np.float32) for _ in range(n)]
                     for _ in range(args.grad_sets)]
        steps = {}
        for module, tag in modules:
            # separate params per call, so that no call sees another's state
            params = ([rng.standard_normal(args.size).astype(np.float32) for _ in range(n)],
                      [rng.standard_normal(args.size).astype(np.float32) for _ in range(n)])
            steps.update(cases(module, params, grad_sets, tag))
        times = harness.time_interleaved(steps, args.repeats, warmup=20)
        for name, t in times.items():
            print(f"{n:>8} {name:>22} {t * 1e6:>9.2f}")
            rows.append(dict(tensors=n, size=args.size, grad_sets=args.grad_sets, call=name, us=t * 1e6))
        ratio = times["Adam.step"] / times["functional.adam"]
        print(f"{n:>8} {'Adam.step / functional':>22} {ratio:>9.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(machine=harness.machine_info(), rows=rows), f, indent=1)


if __name__ == "__main__":
    main()
