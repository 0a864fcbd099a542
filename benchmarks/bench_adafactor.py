"""CPU benchmark of Adafactor: fusedopt.Adafactor and fusedopt.torch.Adafactor vs torch.optim.Adafactor
(foreach=False and foreach=True; torch has no fused Adafactor) vs a bandwidth probe, in one process,
interleaved, medians. Its state is shaped by the params, so the shapes are its own:

    matrix    one 2000 x 5000 param (factored: 3 passes, 24 bytes per float32 param)
    vector    one 1e7 param (2 passes, 32 bytes per float32 param)
    model     20 matrices of 500 x 500 and 20 vectors of 250,000 (1e7 in all)

    python benchmarks/bench_adafactor.py [--threads 2] [--repeats 20] [--json benchmarks/results_adafactor.json]
                                         [--baseline FOLDER]

--baseline FOLDER adds the rows of another build (installed in FOLDER as the package fusedopt_old), in the
same rounds, labelled "old fusedopt".

Byte model (float32): factored: pass 1 reads p and g, pass 2 reads g, pass 3 reads p and g and writes p
(6 arrays); vector: pass 1 reads p, g, V and writes V, pass 2 reads p, g, V and writes p (8 arrays).
"%ceil" is that GB/s over the probe's GB/s (Adam's traffic through the same driver) in the same rounds.
Each implementation's first step is checked against fusedopt.reference.adafactor. torch's rows say
MISMATCH for the one-tensor cases (its float32 norm of 1e7 elements is 3e-4 off, so its step size is),
and the script then exits with status 1, as every benchmark script does when a row disagrees.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

import fusedopt
from fusedopt.bench import harness, impls, report
from fusedopt.bench.tables import (ADAFACTOR_CASES, adafactor_arrays_per_param, adafactor_expected,
                                   rows_from_times)

CASES = ADAFACTOR_CASES
KWARGS = dict(lr=1e-2)


def torch_impl(params, grads, foreach=None, fused_adapter=False):
    import torch

    tensors = [torch.from_numpy(p.copy()).requires_grad_(True) for p in params]
    for t, g in zip(tensors, grads):
        t.grad = torch.from_numpy(g.copy())
    if fused_adapter:
        import fusedopt.torch as ft

        opt = ft.Adafactor(tensors, **KWARGS)
    else:
        opt = torch.optim.Adafactor(tensors, foreach=foreach, **KWARGS)
    return impls.Impl(opt.step, [t.detach().numpy() for t in tensors])


def fusedopt_impl(params, grads, lib=fusedopt):
    params = [p.copy() for p in params]
    opt = lib.Adafactor(params, **KWARGS)
    return impls.Impl(lambda: opt.step(list(grads)), params)


def case(name: str, threads: int, repeats: int, baseline=None):
    shapes = CASES[name]
    params, grads = impls.make_data(shapes, np.float32)
    n = sum(int(np.prod(s)) for s in shapes)
    nbytes = sum(int(np.prod(s)) * 4 * adafactor_arrays_per_param(s) for s in shapes)
    built = {prefix + "fusedopt": fusedopt_impl(params, grads, lib) for lib, prefix in harness.builds(baseline)}
    built.update({"fusedopt-torch": torch_impl(params, grads, fused_adapter=True),
                  "torch-default": torch_impl(params, grads, foreach=False),
                  "torch-foreach": torch_impl(params, grads, foreach=True)})
    expected = adafactor_expected(params, grads, KWARGS)
    ok = {}
    for key, impl in built.items():
        impl.step()
        ok[key] = all(np.allclose(p, e, rtol=1e-4, atol=1e-6) for p, e in zip(impl.params, expected))
    probe, probe_bytes = harness.stream_probe(n, np.float32)
    times = harness.time_interleaved({**{k: v.step for k, v in built.items()}, "probe": probe}, repeats)
    return rows_from_times(times, built, ok, probe_bytes / times["probe"], nbytes,
                           dict(kind="optimizer", name=f"adafactor-{name}", size=name, n=n, dtype="float32",
                                threads=threads))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, nargs="+", default=[2])
    ap.add_argument("--cases", nargs="+", default=["matrix", "vector", "model"], choices=list(CASES))
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--json", default=None, help="write rows and machine info here")
    ap.add_argument("--baseline", default=None, help="folder holding another build as the package fusedopt_old")
    args = ap.parse_args(argv)
    cases = [lambda threads, name=name: case(name, threads, args.repeats, args.baseline) for name in args.cases]
    return report.run_cases(args.threads, cases, args.json, args.repeats)


if __name__ == "__main__":
    sys.exit(main())
