"""Issue 18's targets, read off the files benchmarks/gpu_check.sh leaves in its folder
(bench_gpu.json, bench_gpu_host.json): hit or miss for each, with the figures behind it.

    python benchmarks/gpu_targets.py RESULTS_DIR"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def row(rows, size, backend, name="adam"):
    return next((r for r in rows if r["name"] == name and r["size"] == size and r["backend"] == backend), None)


def verdicts(bench: dict, host: dict):
    rows = bench.get("rows", [])
    out = []
    for size in ("1e8", "1e9"):
        ours, torch = row(rows, size, "fusedopt-cuda"), row(rows, size, "torch-cuda-fused")
        if ours is None:
            out.append((f"Adam {size}: >= 90 % of the Adam-traffic probe", None, "not measured"))
            continue
        for kind, key in (("kernel", "kernel_frac_traffic"), ("step", "frac_traffic")):
            if key in ours:
                out.append((f"Adam {size} ({kind}): >= 90 % of the Adam-traffic probe", ours[key] >= 0.9,
                            f"{100 * ours[key]:.1f} %"))
        if torch is not None:
            out.append((f"Adam {size}: >= 1.2x torch fused", torch["ms"] / ours["ms"] >= 1.2,
                        f"{ours['ms']:.3f} vs {torch['ms']:.3f} ms: {torch['ms'] / ours['ms']:.2f}x"))
    for size, target in (("model200", 1.2), ("small200", 2.0)):
        ours, torch = row(rows, size, "fusedopt-cuda"), row(rows, size, "torch-cuda-fused")
        if ours is None or torch is None:
            out.append((f"Adam {size}: >= {target}x torch fused", None, "not measured"))
        else:
            out.append((f"Adam {size}: >= {target}x torch fused", torch["ms"] / ours["ms"] >= target,
                        f"{ours['ms']:.3f} vs {torch['ms']:.3f} ms: {torch['ms'] / ours['ms']:.2f}x"))
    for r in host.get("rows", []):
        if r["case"] == "steady" and r.get("target_us"):
            out.append((f"host time per steady step, {r['tensors']} tensors: <= {r['target_us']:.0f} us",
                        r["us_per_step"] <= r["target_us"], f"{r['us_per_step']:.1f} us"))
    return out


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    folder = Path(argv[0])

    def load(name):
        path = folder / name
        return json.loads(path.read_text()) if path.exists() else {}

    for target, hit, figures in verdicts(load("bench_gpu.json"), load("bench_gpu_host.json")):
        print(f"{'hit ' if hit else 'MISS' if hit is not None else '----'}  {target}: {figures}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
