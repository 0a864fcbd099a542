"""The whole ``optimizer.step()`` through the PyTorch adapter: fusedopt.torch.Adam vs torch.optim.Adam
(fused=True) and torch's default, on the same params and grads, in one process, interleaved, medians;
with the fraction of the bandwidth probe (Adam's 28 bytes per fp32 param) measured in the same rounds.

    python benchmarks/bench_torch_adapter.py [--threads 2] [--repeats 30] [--json out.json]

Two models of 200 tensors: ~1e7 params (200 x 50,000) and tiny (200 x 16). Each implementation steps
its own copy of the params; every step of every one is the same kind of work (the values only drift)."""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

import fusedopt
import fusedopt.torch as ft
from fusedopt.bench import harness, report

MODELS = {"200 x 50000 (1e7)": (200, 50_000), "200 x 16 (tiny)": (200, 16)}


def implementations(n_tensors: int, size: int):
    rng = np.random.default_rng(0)
    init = [rng.standard_normal(size).astype(np.float32) for _ in range(n_tensors)]
    grads = [torch.from_numpy(rng.standard_normal(size).astype(np.float32)) for _ in range(n_tensors)]
    out = {}
    for name, make in [("fusedopt.torch.Adam", lambda ps: ft.Adam(ps, lr=1e-3)),
                       ("torch Adam(fused=True)", lambda ps: torch.optim.Adam(ps, lr=1e-3, fused=True)),
                       ("torch Adam (default)", lambda ps: torch.optim.Adam(ps, lr=1e-3))]:
        params = [torch.nn.Parameter(torch.from_numpy(a.copy())) for a in init]
        for p, g in zip(params, grads):
            p.grad = g.clone()
        out[name] = make(params).step
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    report.set_threads(args.threads)
    rows = []
    print(f"{'model':>20} {'implementation':>24} {'ms/step':>9} {'%ceil':>6} {'vs fused':>9}")
    for model, (n, size) in MODELS.items():
        steps = implementations(n, size)
        probe, probe_bytes = harness.stream_probe(n * size)
        steps["bandwidth probe"] = probe
        times = harness.time_interleaved(steps, args.repeats, warmup=3)
        ceiling = probe_bytes / times.pop("bandwidth probe")
        for name, t in times.items():
            fraction = 28 * n * size / t / ceiling
            vs = times["torch Adam(fused=True)"] / t
            print(f"{model:>20} {name:>24} {t * 1e3:>9.3f} {fraction * 100:>5.0f}% {vs:>8.2f}x")
            rows.append(dict(model=model, tensors=n, size=size, implementation=name, ms=t * 1e3,
                             fraction_of_probe=fraction, speedup_vs_torch_fused=vs, threads=args.threads))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(machine=harness.machine_info(), torch=torch.__version__, rows=rows), f, indent=1)


if __name__ == "__main__":
    main()
