"""Tables, JSON and plots of benchmark rows."""

from __future__ import annotations

import sys
from typing import Callable, List, Sequence

import fusedopt


def write_json(path: str, rows: List[dict], repeats: int) -> None:
    """The rows with the machine they were measured on."""
    import json

    from .harness import machine_info

    with open(path, "w") as f:
        json.dump({"machine": machine_info(), "repeats": repeats, "rows": rows}, f, indent=1)


def finish(rows: List[dict], json_path, repeats: int) -> int:
    """The end of a benchmark script: JSON if asked, exit status 1 if any implementation disagreed."""
    if json_path:
        write_json(json_path, rows, repeats)
    return 0 if all(r["agrees_with_reference"] for r in rows) else 1


def run_cases(threads_list: Sequence[int], cases: Sequence[Callable[[int], List[dict]]], json_path,
              repeats: int) -> int:
    """The body of a benchmark script: for each thread count, each case (a function of the thread
    count returning rows) printed as a table as it finishes; then ``finish``."""
    rows: List[dict] = []
    for threads in threads_list:
        set_threads(threads)
        for case in cases:
            new = case(threads)
            print(table(new), flush=True)
            rows += new
    return finish(rows, json_path, repeats)


def set_threads(n: int) -> None:
    """fusedopt's, torch's and a baseline build's (``fusedopt_old``, --baseline) thread counts: each is
    its own since issue 12, so each is set."""
    fusedopt.set_num_threads(n)
    baseline = sys.modules.get("fusedopt_old")
    if baseline is not None:
        baseline.set_num_threads(n)
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(n)


def table(rows: List[dict], header: bool = True) -> str:
    lines = []
    if header:
        lines.append(f"{'case':36} {'backend':18} {'ms':>10} {'G/s':>8} {'GB/s':>8} {'%ceil':>6} {'vs best other':>13}")
    for r in rows:
        where = f"{r['threads']}T" if r.get("threads") else "gpu"
        case = f"{r['name']} {r['size']} {r['dtype']} {where}"
        vs = "" if r["speedup_vs_best_other"] is None else f"{r['speedup_vs_best_other']:.2f}x"
        flag = "" if r["agrees_with_reference"] else "  MISMATCH vs reference"
        lines.append(f"{case:36} {r['backend']:18} {r['ms']:10.3f} {r['gitems']:8.3f} {r['gbs']:8.2f} "
                     f"{100 * r['frac_ceiling']:5.1f}% {vs:>13}{flag}")
    return "\n".join(lines)


def plot(rows: List[dict], path: str) -> None:
    """Throughput against size per backend, one panel per optimizer/initializer, with the probe's
    ceiling (converted to items/s with that case's byte model) as a dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = sorted({(r["kind"], r["name"]) for r in rows})
    cols = min(4, len(names))
    nrows = (len(names) + cols - 1) // cols
    fig, axes = plt.subplots(nrows, cols, figsize=(4 * cols, 3.4 * nrows), squeeze=False)
    for ax in axes.flat[len(names):]:
        ax.axis("off")
    for ax, (kind, name) in zip(axes.flat, names):
        sub = [r for r in rows if r["name"] == name and r["kind"] == kind]
        for backend in sorted({r["backend"] for r in sub}):
            pts = sorted((r["n"], r["gitems"]) for r in sub if r["backend"] == backend)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=backend)
        ceil = sorted({(r["n"], r["gitems"] / r["frac_ceiling"]) for r in sub
                       if r["backend"] in ("fusedopt", "fusedopt-cuda")})
        if ceil:
            ax.plot([c[0] for c in ceil], [c[1] for c in ceil], "k--", label="bandwidth ceiling")
        ax.set_xscale("log")
        ax.set_title(name)
        ax.set_xlabel("elements")
        ax.set_ylabel("G items / s")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
