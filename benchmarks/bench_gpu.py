"""GPU benchmark (issues 6 and 18): fusedopt's CUDA Adam and SGD-momentum vs torch on CUDA
(fused=True, foreach=True) vs a CuPy elementwise kernel, fp32, single tensors of 1e6 to 1e9 params and
a 200-tensor model of ~1e8 (and one of ~1e6, small200, for the per-step launch and host cost); the
initializers vs torch's and CuPy's; and sweeps of the CUDA chunk size and of the blocks launched per
multiprocessor (the kernels with one thread per chunk: LAMB/LARS norms).
Timed with CUDA events after warm-up, interleaved, medians, twice: whole steps (host launch work
included) and kernel-only (events around the step with the queue full); GB/s by the byte model, the
fraction of a device-to-device copy (a write-only fill for initializers) and, for Adam, of the
Adam-traffic probe (the same walker moving Adam's bytes with no math), all measured in the same
rounds. Every implementation's first step is checked against fusedopt.reference first.

    python benchmarks/bench_gpu.py [--sizes 1e6 1e7 1e8 1e9 model200 small200] [--repeats 20] [--json PATH]
                                   [--backends cuda,cupy,torch-cuda] [--chunks 2048 4096 ...] [--grid 2 4 8]
                                   [--sweep-sizes 1e8]

Same cases as ``fusedopt bench --backends cuda,cupy,torch-cuda``, plus 1e9 and the sweeps.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback

import numpy as np

from fusedopt.backends import cuda as cuda_backend
from fusedopt.bench import gpu, report, suite


SWEEPS = {"chunk": "FUSEDOPT_CUDA_CHUNK", "blocks_per_sm": "FUSEDOPT_CUDA_BLOCKS_PER_SM"}


def launch_sweep(size: str, setting: str, values, repeats: int):
    """One step at one size under several values of one launch setting (set through its environment
    variable), interleaved: Adam under chunk sizes (its table is rebuilt for each), LAMB under blocks
    per multiprocessor (its norm pass, one thread per chunk, is the kernel that setting sizes)."""
    import cupy

    import fusedopt
    from fusedopt.bench import impls, tables

    variable = SWEEPS[setting]
    optimizer = "adam" if setting == "chunk" else "lamb"
    shapes = gpu.shapes_for(size)
    n = sum(int(np.prod(s)) for s in shapes)
    host_p, host_g = impls.make_data(shapes, np.float32)
    ps, gs = [cupy.asarray(p) for p in host_p], [cupy.asarray(g) for g in host_g]
    opt = fusedopt.Adam(ps, lr=1e-3) if optimizer == "adam" else fusedopt.LAMB(ps, lr=1e-3)

    def with_value(value):
        def step():
            os.environ[variable] = str(value)
            opt.step(gs)
        return step

    nbytes = n * tables.bytes_per_param(optimizer, {}, 4)
    probe, probe_bytes = gpu.copy_probe(nbytes)
    try:
        times = gpu.time_events({**{v: with_value(v) for v in values}, "copy": probe}, repeats)
    finally:
        os.environ.pop(variable, None)
        cuda_backend._table_cache.clear()
    copy_bw = probe_bytes / times["copy"]
    rows = []
    for v in values:
        t = times[v]
        rows.append({"size": size, "n": n, "optimizer": optimizer, setting: v, "ms": t * 1e3, "gbs": nbytes / t / 1e9,
                     "frac_copy": nbytes / t / copy_bw})
        print(f"{setting} sweep  {optimizer} {size:>9} {setting} {v:>6}  {t * 1e3:8.3f} ms  {nbytes / t / 1e9:7.1f} GB/s  "
              f"{100 * nbytes / t / copy_bw:5.1f}% of copy", flush=True)
    return rows


def free_gpu_memory():
    import cupy

    cupy.get_default_memory_pool().free_all_blocks()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="+", default=["1e6", "1e7", "1e8", "1e9", "model200", "small200"])
    ap.add_argument("--optimizers", nargs="+", default=["adam", "sgd"], choices=list(suite.OPTIMIZERS))
    ap.add_argument("--initializers", nargs="+", default=["uniform", "normal", "kaiming_uniform"])
    ap.add_argument("--init-sizes", nargs="*", default=["1e7", "1e8"], help="none: no initializer cases")
    ap.add_argument("--chunks", nargs="*", type=int, default=[4096, 16384, 65536, 262144],
                    help="FUSEDOPT_CUDA_CHUNK values to sweep for Adam (none: skip; unset, the chunk grows with "
                         "the problem: 65536 at 1e8 on an H100)")
    ap.add_argument("--grid", nargs="*", type=int, default=[2, 3, 4, 8, 16],
                    help="FUSEDOPT_CUDA_BLOCKS_PER_SM values to sweep for LAMB's norm pass (none: skip)")
    ap.add_argument("--sweep-sizes", nargs="+", default=["1e8", "model200"], help="sizes of the two sweeps")
    ap.add_argument("--adafactor", nargs="*", default=[], choices=["matrix", "vector", "model", "small"],
                    help="Adafactor cases (fusedopt.bench.tables.ADAFACTOR_CASES) against torch's foreach one")
    ap.add_argument("--backends", default=None,
                    help="comma-separated subset of cuda,cupy,torch-cuda (default: every one available)")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    backends = gpu.available_backends()
    if "cuda" not in backends:
        print("bench_gpu: no CUDA device visible to CuPy", file=sys.stderr)
        return 2
    if args.backends:
        missing = set(args.backends.split(",")) - set(backends)
        if missing:
            print(f"bench_gpu: backends not available here: {', '.join(sorted(missing))}", file=sys.stderr)
            return 2
        backends = args.backends.split(",")
    print(f"GPU: {gpu.device_name()}; backends: {', '.join(backends)}; {args.repeats} rounds, medians")
    rows, failures = [], []

    def run(label, fn):
        try:
            new = fn()
        except Exception:  # noqa: BLE001 - one failing case must not lose the others' figures
            failures.append(label)
            traceback.print_exc()
            return
        if new and "backend" in new[0]:
            print(report.table(new, header=not rows), flush=True)
            if any("kernel_ms" in r for r in new):
                print(gpu.kernel_table(new), flush=True)
            rows.extend(new)

    for size in args.sizes:
        huge = not size[0].isalpha() and float(size) >= 5e8
        for optimizer in args.optimizers:
            # at 1e9 (16 GB per implementation) only fusedopt and torch fused fit beside each other
            use = [b for b in backends if b != "cupy"] if huge else backends
            variants = ("fused",) if huge else ("fused", "foreach")
            run(f"{optimizer} {size}", lambda: gpu.optimizer_case(optimizer, size, np.float32, use, args.repeats,
                                                                   torch_variants=variants))
    for case in args.adafactor:
        run(f"adafactor {case}", lambda: gpu.adafactor_case(case, backends, args.repeats))
    for size in args.init_sizes:
        for name in args.initializers:
            run(f"{name} {size}", lambda: gpu.initializer_case(name, int(float(size)), np.float32, backends,
                                                               args.repeats))
    sweeps = {"chunk": [], "blocks_per_sm": []}
    for setting, values in (("chunk", args.chunks), ("blocks_per_sm", args.grid)):
        for size in args.sweep_sizes if values else ():
            try:
                sweeps[setting] += launch_sweep(size, setting, values, args.repeats)
            except Exception:  # noqa: BLE001
                failures.append(f"{setting} sweep {size}")
                traceback.print_exc()
            free_gpu_memory()
    if args.json:
        report.write_json(args.json, rows, args.repeats)
        if any(sweeps.values()):
            import json

            with open(args.json, encoding="utf-8") as f:
                data = json.load(f)
            data.update({f"{setting}_sweep": rows for setting, rows in sweeps.items() if rows})
            with open(args.json, "w", encoding="utf-8") as f:
                json.dump(data, f, indent=1)
    if failures:
        print(f"bench_gpu: {len(failures)} case(s) failed: {', '.join(failures)}", file=sys.stderr)
        return 1
    return report.finish(rows, None, args.repeats)


if __name__ == "__main__":
    sys.exit(main())
