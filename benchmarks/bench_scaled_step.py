"""CPU benchmark of a mixed-precision step with loss scaling and global-norm clipping, Adam, float32:

    fusedopt          Adam.scaled_step(grads, loss_scale, max_norm): one read-only pass over the grads
                      (norm, inf/NaN check), then the fused step with 1/loss_scale x clip inside it
    fusedopt-torch    the same through fusedopt.torch.Adam.scaled_step
    torch             torch's own sequence: unscale in place with the inf check (the kernel GradScaler.unscale_
                      runs), clip_grad_norm_(foreach=True), then Adam(fused=True).step()

    python benchmarks/bench_scaled_step.py [--sizes 1e7 model200] [--threads 2] [--repeats 20] [--json FILE]

One process, the same data, interleaved, medians. The loss scale is 1 and max_norm is 1e30 for every
implementation, so that torch's in-place unscale and clip leave the grads as they were from one round
to the next (they still read and write every byte). Byte model (float32): fusedopt reads g once more
than Adam's 28 bytes (32 per param); torch's sequence moves 48 (unscale and clip each read and write g,
the norm reads it). "%ceil" is the byte model's GB/s over the Adam-pattern probe's in the same rounds.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

import fusedopt
from fusedopt.bench import harness, impls, report, suite
from fusedopt.bench.tables import rows_from_times

LOSS_SCALE, MAX_NORM = 1.0, 1e30


def case(size: str, threads: int, repeats: int):
    import torch

    import fusedopt.torch as ft

    shapes = suite.shapes_for(size)
    params, grads = impls.make_data(shapes, np.float32)
    n = sum(int(np.prod(s)) for s in shapes)

    ours = [p.copy() for p in params]
    opt = fusedopt.Adam(ours, lr=1e-3)

    def tensors():
        ts = [torch.from_numpy(p.copy()).requires_grad_(True) for p in params]
        for t, g in zip(ts, grads):
            t.grad = torch.from_numpy(g.copy())
        return ts

    adapter_params = tensors()
    adapter = ft.Adam(adapter_params, lr=1e-3)
    torch_params = tensors()
    torch_opt = torch.optim.Adam(torch_params, lr=1e-3, fused=True)
    found_inf = torch.zeros(())
    inv_scale = torch.full((), 1.0 / LOSS_SCALE)

    def torch_step():
        torch._amp_foreach_non_finite_check_and_unscale_([t.grad for t in torch_params], found_inf, inv_scale)
        torch.nn.utils.clip_grad_norm_(torch_params, MAX_NORM, foreach=True)
        torch_opt.step()

    built = {"fusedopt": impls.Impl(lambda: opt.scaled_step(grads, loss_scale=LOSS_SCALE, max_norm=MAX_NORM), ours),
             "fusedopt-torch": impls.Impl(lambda: adapter.scaled_step(loss_scale=LOSS_SCALE, max_norm=MAX_NORM),
                                          [t.detach().numpy() for t in adapter_params]),
             "torch": impls.Impl(torch_step, [t.detach().numpy() for t in torch_params])}
    expected = suite.reference_after_one_step("adam", params, grads)
    ok = {}
    for name, impl in built.items():
        impl.step()
        ok[name] = suite.agrees(impl, expected, np.float32)
    probe, probe_bytes = harness.stream_probe(n, np.float32)
    times = harness.time_interleaved({**{k: v.step for k, v in built.items()}, "probe": probe}, repeats)
    rows = rows_from_times(times, built, ok, probe_bytes / times["probe"], n * 32,
                           dict(kind="optimizer", name="adam-scaled", size=size, n=n, dtype="float32",
                                threads=threads))
    for row in rows:  # torch's sequence moves 48 bytes per param by its own model
        if row["backend"] == "torch":
            row["gbs"] *= 48 / 32
            row["frac_ceiling"] *= 48 / 32
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="+", default=["1e7", "model200"])
    ap.add_argument("--threads", type=int, nargs="+", default=[2])
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    cases = [lambda threads, size=size: case(size, threads, args.repeats) for size in args.sizes]
    return report.run_cases(args.threads, cases, args.json, args.repeats)


if __name__ == "__main__":
    sys.exit(main())
