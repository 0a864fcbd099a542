"""CPU benchmark of Adam with 16-bit storage (issue 16), 1e7 params, each layout against its own byte
ceiling and the other libraries' step over the same dtypes:

    bf16            params, grads, exp_avg, exp_avg_sq in bfloat16 (14 bytes per param: p read and
                    written, g read, m and v read and written, 2 bytes each)
                      fusedopt       fusedopt.Adam on ml_dtypes.bfloat16 arrays
                      torch-fused    torch.optim.Adam(fused=True) on bfloat16 tensors (its state is bfloat16)
                      deepspeed      DeepSpeedCPUAdam(fp32_optimizer_states=False) on bfloat16 tensors
    fp16            the same in float16 (14 bytes; DeepSpeed's CPU Adam has no float16 state)
    bf16-master     bfloat16 params and grads, float32 master copy and states (28 bytes: the master
                    read and written 8, m 8, v 8, g read 2, the bfloat16 param written 2)
                      fusedopt       fusedopt.Adam(master_weights=True): one pass
                      deepspeed      DeepSpeedCPUAdam on the float32 master copy with float32 grads, as
                                     ZeRO-Offload runs it (28 bytes; the bfloat16 copy is made elsewhere)
                      torch-fused    Adam(fused=True) on the float32 copy, then p.copy_(copy) (34 bytes)
    bf16-stochastic the bf16 layout with stochastic rounding of p, m and v (fusedopt only), beside nearest

    python benchmarks/bench_mixed_precision.py [--size 1e7] [--threads 2] [--repeats 20] [--json FILE]
                                               [--baseline FOLDER]

--baseline FOLDER adds the rows of another build (installed in FOLDER as the package fusedopt_old),
prefixed "old ", timed in the same rounds.

One process, the same data, interleaved, medians. "%ceil" is the layout's byte model in GB/s over the
float32 Adam-pattern probe's (28 bytes per param) measured in the same rounds. A row agrees with the
reference when its params after one step are within 2 ulps of the storage type of reference.adam in
float64 (the float64 step rounded to bfloat16 or float16).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

import fusedopt
from fusedopt import reference
from fusedopt.bench import harness, impls, report
from fusedopt.bench.tables import rows_from_times

LR = 1e-3


def torch_view(a):
    """A torch tensor over the memory of a NumPy array (bfloat16 through an int16 view): no copy."""
    import torch

    if a.dtype.name == "bfloat16":
        return torch.from_numpy(a.view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(a)


def deepspeed_adam(tensors, fp32_states: bool):
    """DeepSpeedCPUAdam over tensors whose .grad is set (Adam, not AdamW: L2 weight decay 0), or None."""
    try:
        from deepspeed.ops.adam import DeepSpeedCPUAdam
    except Exception as e:  # noqa: BLE001 - not installed, or its C++ op does not build here
        print(f"deepspeed: not available ({type(e).__name__}: {e})", file=sys.stderr)
        return None
    return DeepSpeedCPUAdam(tensors, lr=LR, adamw_mode=False, fp32_optimizer_states=fp32_states)


def agrees(params, expected, dtype) -> bool:
    spacing = 2.0**-7 if dtype.name == "bfloat16" else 2.0**-10
    return all(np.allclose(p.astype(np.float64), e, rtol=2 * spacing, atol=1e-6) for p, e in zip(params, expected))


def torch_tensors(params, grads):
    ts = [torch_view(p.copy()).requires_grad_(True) for p in params]
    for t, g in zip(ts, grads):
        t.grad = torch_view(g.copy())
    return ts


def layout_case(layout: str, n: int, threads: int, repeats: int, baseline=None):
    import ml_dtypes
    import torch

    dtype = np.dtype(np.float16 if layout == "fp16" else ml_dtypes.bfloat16)
    shapes = [(n,)]
    params, grads = impls.make_data(shapes, dtype)
    expected = []
    for p, g in zip(params, grads):
        p64 = p.astype(np.float64)
        reference.adam(p64, g.astype(np.float64), {}, lr=LR)
        expected.append(p64)
    built, nbytes = {}, 14 * n
    if layout in ("bf16", "fp16", "bf16-stochastic"):
        for lib, prefix in harness.builds(baseline):
            ours = [p.copy() for p in params]
            opt = lib.Adam(ours, lr=LR)
            built[prefix + "fusedopt"] = impls.Impl(lambda opt=opt: opt.step(grads), ours)
        if layout == "bf16-stochastic":
            rounded = [p.copy() for p in params]
            sr = fusedopt.Adam(rounded, lr=LR, rounding_seed=0)
            built["fusedopt-stochastic"] = impls.Impl(lambda: sr.step(grads), rounded)
        else:
            ts = torch_tensors(params, grads)
            torch_opt = torch.optim.Adam(ts, lr=LR, fused=True)
            built["torch-fused"] = impls.Impl(torch_opt.step, [p.detach() for p in ts])
            if layout == "bf16":
                ds_ts = torch_tensors(params, grads)
                ds = deepspeed_adam(ds_ts, fp32_states=False)
                if ds is not None:
                    built["deepspeed"] = impls.Impl(ds.step, [p.detach() for p in ds_ts])
    else:  # bf16-master
        nbytes = 28 * n
        for lib, prefix in harness.builds(baseline):
            ours = [p.copy() for p in params]
            opt = lib.Adam(ours, lr=LR, master_weights=True)
            built[prefix + "fusedopt"] = impls.Impl(lambda opt=opt: opt.step(grads), ours)
        masters = [torch.from_numpy(p.astype(np.float32)).requires_grad_(True) for p in params]
        for t, g in zip(masters, grads):
            t.grad = torch.from_numpy(g.astype(np.float32))
        ds = deepspeed_adam(masters, fp32_states=True)
        if ds is not None:
            built["deepspeed"] = impls.Impl(ds.step, [t.detach() for t in masters])
        copies = [torch_view(p.copy()) for p in params]
        torch_masters = [torch.from_numpy(p.astype(np.float32)).requires_grad_(True) for p in params]
        for t, g in zip(torch_masters, grads):
            t.grad = torch.from_numpy(g.astype(np.float32))
        torch_opt = torch.optim.Adam(torch_masters, lr=LR, fused=True)

        def torch_master_step():
            torch_opt.step()
            with torch.no_grad():
                for c, m in zip(copies, torch_masters):
                    c.copy_(m)

        built["torch-fused+copy"] = impls.Impl(torch_master_step, copies)
    ok = {}
    for name, impl in built.items():
        impl.step()
        ok[name] = agrees([as_numpy(p, dtype) for p in impl.params], expected, dtype)
    probe, probe_bytes = harness.stream_probe(n, np.float32)
    times = harness.time_interleaved({**{k: v.step for k, v in built.items()}, "probe": probe}, repeats)
    rows = rows_from_times(times, built, ok, probe_bytes / times["probe"], nbytes,
                           dict(kind="optimizer", name=f"adam-{layout}", size=f"{n:.0e}", n=n, dtype=dtype.name,
                                threads=threads))
    model = {"torch-fused+copy": 34, "deepspeed": 28 if layout == "bf16-master" else 14}
    for row in rows:  # each implementation's own byte model where it differs from the layout's
        if row["backend"] in model and nbytes != model[row["backend"]] * n:
            row["gbs"] *= model[row["backend"]] * n / nbytes
            row["frac_ceiling"] *= model[row["backend"]] * n / nbytes
    return rows


def as_numpy(p, dtype):
    """A param as a NumPy array of the layout's dtype (torch tensors through their bits)."""
    if isinstance(p, np.ndarray):
        return p
    import torch

    if p.dtype == torch.bfloat16:
        return p.view(torch.int16).numpy().view(dtype)
    return p.numpy()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=float, default=1e7)
    ap.add_argument("--layouts", nargs="+", default=["bf16", "fp16", "bf16-master", "bf16-stochastic"])
    ap.add_argument("--threads", type=int, nargs="+", default=[2])
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--json", default=None)
    ap.add_argument("--baseline", default=None, help="folder holding another build as the package fusedopt_old")
    args = ap.parse_args(argv)
    cases = [lambda threads, layout=layout: layout_case(layout, int(args.size), threads, args.repeats, args.baseline)
             for layout in args.layouts]
    return report.run_cases(args.threads, cases, args.json, args.repeats)


if __name__ == "__main__":
    sys.exit(main())
