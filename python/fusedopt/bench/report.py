"""Tables, JSON and plots of benchmark rows."""

from __future__ import annotations

import sys
from typing import Callable, List, Optional, Sequence

import fusedopt


def write_json(path: str, rows: List[dict], repeats: int, **extra) -> None:
    """The rows with the machine they were measured on (fusedopt's version, ISA and library versions
    among it), the thread counts, and whatever else the run recorded (its load, its warnings)."""
    import json

    from .harness import machine_info

    threads = sorted({r["threads"] for r in rows if r.get("threads")})
    with open(path, "w") as f:
        json.dump({"machine": machine_info(), "repeats": repeats, "threads": threads, **extra, "rows": rows}, f,
                  indent=1)


def finish(rows: List[dict], json_path, repeats: int) -> int:
    """The end of a benchmark script: the spread warnings, JSON if asked, exit status 1 if any
    implementation disagreed."""
    notes = warnings(rows)
    for line in notes:
        print(f"warning: {line}", file=sys.stderr)
    if json_path:
        write_json(json_path, rows, repeats, warnings=notes)
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
    """Median ms with the p90 and the worst sample and the interquartile range (relative to the
    median), a "!" on rows whose spread is too wide to trust the median (harness.unstable); the
    fraction of the bandwidth ceiling only out of cache ("in cache" otherwise, "?" after it when the
    probe itself ran unstably); and the reference check."""
    lines = []
    if header:
        lines.append(f"{'case':36} {'backend':18} {'ms':>9} {'p90':>9} {'max':>9} {'IQR':>5}  {'G/s':>7} "
                     f"{'%ceil':>8} {'vs best other':>13}  ref")
    for r in rows:
        where = f"{r['threads']}T" if r.get("threads") else "gpu"
        case = f"{r['name']} {r['size']} {r['dtype']} {where}"
        vs = "" if r["speedup_vs_best_other"] is None else f"{r['speedup_vs_best_other']:.2f}x"
        if r.get("frac_ceiling") is None:
            ceil = "in cache"
        else:
            ceil = f"{100 * r['frac_ceiling']:.1f}%" + ("?" if r.get("probe_unstable") else "")
        p90 = f"{r['ms_p90']:9.3f}" if "ms_p90" in r else f"{'':9}"
        worst = f"{r['ms_max']:9.3f}" if "ms_max" in r else f"{'':9}"
        iqr = f"{100 * r['iqr_rel']:4.0f}%" if "iqr_rel" in r else f"{'':5}"
        flag = "!" if r.get("unstable") else " "
        ref = "ok" if r["agrees_with_reference"] else "MISMATCH vs reference"
        lines.append(f"{case:36} {r['backend']:18} {r['ms']:9.3f} {p90} {worst} {iqr}{flag} {r['gitems']:7.3f} "
                     f"{ceil:>8} {vs:>13}  {ref}")
    return "\n".join(lines)


def warnings(rows: List[dict], load_before: Optional[dict] = None, load_after: Optional[dict] = None,
             own_load: int = 0) -> List[str]:
    """What a reader of the table must know before trusting it: rows with a wide spread, probes that
    ran unstably, and a machine that was busy before or after (with the remedy)."""
    from .harness import BUSY_FRACTION, SLOW_TAIL, WIDE_IQR, loaded

    notes = []
    wide = [r for r in rows if r.get("unstable")]
    if wide:
        notes.append(f"{len(wide)} of {len(rows)} rows had a wide spread (marked '!': the middle half of the "
                     f"samples spans more than {100 * WIDE_IQR:.0f}% of the median, or the p90 is above "
                     f"{SLOW_TAIL}x the median); read their medians with care")
    probes = {(r["kind"], r["name"], r["size"], r["dtype"], r.get("threads")) for r in rows
              if r.get("probe_unstable") and r.get("frac_ceiling") is not None}
    if probes:
        notes.append(f"the bandwidth probe itself ran unstably in {len(probes)} case(s) (their %ceil is marked '?')")
    busy = [f"{when}: {100 * load['busy_fraction']:.0f}% of the CPUs busy, load average {load['loadavg_1min']:.2f}"
            for when, load in (("before", load_before), ("after", load_after)) if load and loaded(load)]
    if busy:
        notes.append(f"the machine was busy ({'; '.join(busy)}; more than {100 * BUSY_FRACTION:.0f}% is too much): "
                     "the times are not this machine's best; rerun when it is quiet, or with --threads 1 and more "
                     "--repeats")
    if own_load:
        notes.append(f"{own_load} busy process(es) of --load ran during every timing: a loaded scenario by request")
    return notes


def plot(rows: List[dict], path: str, title: str = "") -> None:
    """Throughput against size per backend (and thread count, where several ran), one panel per
    optimizer/initializer, with error bars from the quartiles, and the probe's ceiling (converted to
    items/s with that case's byte model) as a dashed line where the data is out of cache. Log axes
    where the values span a decade or more."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = sorted({(r["kind"], r["name"]) for r in rows})
    several_threads = len({r.get("threads") for r in rows}) > 1
    cols = min(4, len(names))
    nrows = (len(names) + cols - 1) // cols
    fig, axes = plt.subplots(nrows, cols, figsize=(4 * cols, 3.4 * nrows + 0.6), squeeze=False)
    for ax in axes.flat[len(names):]:
        ax.axis("off")
    for ax, (kind, name) in zip(axes.flat, names):
        sub = [r for r in rows if r["name"] == name and r["kind"] == kind]
        series = sorted({(r["backend"], r.get("threads")) for r in sub}, key=str)
        for backend, threads in series:
            pts = sorted((r["n"], r) for r in sub if r["backend"] == backend and r.get("threads") == threads)
            x = [n for n, _ in pts]
            y = [r["gitems"] for _, r in pts]
            # the quartiles of the time are the other way round in items/s
            low = [r["gitems"] - r["gitems"] * r["ms"] / r["ms_q3"] if "ms_q3" in r else 0.0 for _, r in pts]
            high = [r["gitems"] * r["ms"] / r["ms_q1"] - r["gitems"] if "ms_q1" in r else 0.0 for _, r in pts]
            label = f"{backend} {threads}T" if several_threads and threads else backend
            ax.errorbar(x, y, yerr=[low, high], marker="o", capsize=3, label=label)
        ceil = sorted({(r["n"], r["gitems"] / r["frac_ceiling"]) for r in sub
                       if r["backend"] in ("fusedopt", "fusedopt-cuda") and r.get("frac_ceiling")})
        if ceil:
            ax.plot([c[0] for c in ceil], [c[1] for c in ceil], "k--", label="bandwidth ceiling (out of cache)")
        sizes = [r["n"] for r in sub]
        speeds = [r["gitems"] for r in sub if r["gitems"] > 0]
        if max(sizes) >= 10 * min(sizes):
            ax.set_xscale("log")
        if speeds and max(speeds) >= 10 * min(speeds):
            ax.set_yscale("log")
        ax.set_title(name)
        ax.set_xlabel("elements")
        ax.set_ylabel("G items / s")
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / fig.get_figheight()) if title else None)
    fig.savefig(path, dpi=110)
