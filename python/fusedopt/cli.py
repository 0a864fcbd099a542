"""The ``fusedopt`` command: ``fusedopt bench`` (how fast, and still correct, on this machine),
``fusedopt info`` (what to paste into a bug report) and ``fusedopt demo`` (the classic pictures of
gradient descent). Bad options exit with status 2 and a message."""

from __future__ import annotations

import argparse
import datetime
import importlib
import os
import sys
from typing import List, Optional

import numpy as np

from ._progress import Progress

QUICK = dict(sizes=["1e4", "1e5", "1e6"], repeats=10)
FULL = dict(sizes=["1e4", "1e5", "1e6", "1e7", "model200"], repeats=20)


class UsageError(Exception):
    """A bad option: reported on stderr, exit status 2, no traceback."""


def _size(text: str) -> str:
    if text.startswith("model"):
        if not text[5:].isdigit() or int(text[5:]) < 1:
            raise argparse.ArgumentTypeError(f"invalid size {text!r}: expected modelN with N >= 1")
        return text
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid size {text!r}: expected a number of elements such as 1e6") from None
    if not (1 <= value <= 2e9) or value != int(value):
        raise argparse.ArgumentTypeError(f"invalid size {text!r}: expected a whole number of elements in [1, 2e9]")
    return text


def _csv(text: str) -> List[str]:
    return [t for t in text.replace(",", " ").split() if t]


def _parser() -> argparse.ArgumentParser:
    from .bench import suite

    ap = argparse.ArgumentParser(prog="fusedopt", description=__doc__)
    sub = ap.add_subparsers(dest="command", required=True)
    b = sub.add_parser("bench", help="time every optimizer and initializer on every backend here, after checking them")
    b.add_argument("--optimizers", type=_csv, default=list(suite.OPTIMIZERS),
                   help=f"comma-separated, from {', '.join(suite.OPTIMIZERS)} (default: all)")
    b.add_argument("--initializers", type=_csv, default=list(suite.QUICK_INITIALIZERS),
                   help=f"comma-separated, from {', '.join(suite.INITIALIZERS)}; 'none' to skip")
    b.add_argument("--sizes", type=_size, nargs="+", default=None, help="elements per case, e.g. 1e5 1e6 model200")
    b.add_argument("--dtypes", type=_csv, default=["float32"], help="float32 and/or float64")
    b.add_argument("--threads", type=int, nargs="+", default=None, help="thread counts (default: all cores)")
    b.add_argument("--backends", type=_csv, default=None,
                   help=f"comma-separated, from {', '.join(suite.CPU_BACKENDS + suite.GPU_BACKENDS)} "
                        "(default: all available)")
    b.add_argument("--repeats", type=int, default=None, help="timed rounds per case (median reported)")
    b.add_argument("--json", metavar="PATH", help="write the rows and the machine description here")
    b.add_argument("--plot", metavar="PATH", help="write a throughput plot here (needs matplotlib)")
    b.add_argument("--load", type=int, default=0, metavar="N",
                   help="start N busy processes for the duration of the run (a loaded machine, reproducibly); "
                        "they stop with it")
    mode = b.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="a suite of about a minute (default)")
    mode.add_argument("--full", action="store_true", help="larger sizes and more rounds")
    sub.add_parser("info", help="version, build, instruction set, threads, optional frameworks")
    _demo_parser(sub)
    return ap


def _at_least(lo: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid int {text!r}") from None
        if value < lo:
            raise argparse.ArgumentTypeError(f"expected an int >= {lo}, got {value}")
        return value

    return parse


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}") from None
    if not (value > 0 and np.isfinite(value)):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text}")
    return value


def _demo_parser(sub) -> None:
    from .surfaces import SURFACES

    d = sub.add_parser("demo", help="the classic pictures of gradient descent (needs matplotlib: 'fusedopt[demo]')")
    demos = d.add_subparsers(dest="demo", required=True)
    p = demos.add_parser("paths", help="every optimizer's path on a loss surface, as a still (.png) or animation (.gif)")
    p.add_argument("--surface", choices=list(SURFACES), default="beale")
    p.add_argument("--out", default="paths.png", help="a .png/.pdf/.svg still or a .gif animation (default: paths.png)")
    p.add_argument("--steps", type=_at_least(1), default=300)
    p.add_argument("--fps", type=_at_least(1), default=20, help="frames per second of a .gif")
    r = demos.add_parser("regression", help="batch GD vs SGD vs mini-batch on a linear regression; lr = 1 on y = x²")
    r.add_argument("--out", default="fit.png")
    r.add_argument("--samples", type=_at_least(2), default=200)
    r.add_argument("--epochs", type=_at_least(1), default=30)
    r.add_argument("--lr", type=_positive_float, default=0.05)
    r.add_argument("--seed", type=_at_least(0), default=0)
    t = demos.add_parser("train", help="the NumPy MLP trained with each optimizer and each initializer")
    t.add_argument("--dataset", choices=["digits", "moons"], default="digits")
    t.add_argument("--out", default="curves.png")
    t.add_argument("--epochs", type=_at_least(1), default=30)
    t.add_argument("--batch-size", type=_at_least(1), default=32)
    t.add_argument("--samples", type=_at_least(0), default=0, help="use this many samples (default 0: all)")
    t.add_argument("--seed", type=_at_least(0), default=0)


def _check_choices(args) -> None:
    from .bench import suite

    for opt in args.optimizers:
        if opt not in suite.OPTIMIZERS:
            raise UsageError(f"--optimizers: unknown optimizer {opt!r}; choose from {', '.join(suite.OPTIMIZERS)}")
    if args.initializers == ["none"]:
        args.initializers = []
    for name in args.initializers:
        if name not in suite.INITIALIZERS:
            raise UsageError(f"--initializers: unknown initializer {name!r}; choose from {', '.join(suite.INITIALIZERS)}")
    for dt in args.dtypes:
        if dt not in ("float32", "float64"):
            raise UsageError(f"--dtypes: {dt!r} is not benchmarked; choose float32 and/or float64")
    available = suite.available_backends()
    if args.backends is None:
        args.backends = available
    for b in args.backends:
        if b not in suite.CPU_BACKENDS + suite.GPU_BACKENDS:
            raise UsageError(f"--backends: unknown backend {b!r}; choose from "
                             f"{', '.join(suite.CPU_BACKENDS + suite.GPU_BACKENDS)}")
        if b not in available:
            raise UsageError(f"--backends: {b!r} is not available on this machine (available: {', '.join(available)})")
    if args.threads is not None and any(t < 1 for t in args.threads):
        raise UsageError("--threads: thread counts must be >= 1")
    if args.repeats is not None and args.repeats < 1:
        raise UsageError("--repeats: must be >= 1")
    if args.plot:
        try:
            importlib.import_module("matplotlib")
        except ImportError:
            raise UsageError("--plot: needs matplotlib (pip install 'fusedopt[bench]')") from None
    for option in ("json", "plot"):
        _check_writable(f"--{option}", getattr(args, option))
    most = 4 * (os.cpu_count() or 1)
    if not 0 <= args.load <= most:
        raise UsageError(f"--load: expected 0 to {most} busy processes (4 per CPU), got {args.load}")


def _check_writable(option: str, path: Optional[str]) -> None:
    """Refuse an output path up front, not after minutes of timing."""
    if path is None:
        return
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise UsageError(f"{option}: {path!r} is a directory")
    if not os.path.isdir(folder):
        raise UsageError(f"{option}: the folder {folder!r} does not exist")
    if not os.access(folder, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        raise UsageError(f"{option}: {path!r} is not writable")


def bench(args) -> int:
    from . import _core
    from .bench import gpu, harness, report, suite

    _check_choices(args)
    preset = FULL if args.full else QUICK
    sizes = args.sizes or preset["sizes"]
    repeats = args.repeats or preset["repeats"]
    threads = args.threads or [_core.cpu_info()["num_procs"]]
    cpu_backends = [b for b in args.backends if b in suite.CPU_BACKENDS]
    gpu_backends = [b for b in args.backends if b in suite.GPU_BACKENDS]
    cases = []
    if cpu_backends:
        cases += [(t, "opt", name, s, dt) for t in threads for dt in args.dtypes for name in args.optimizers
                  for s in sizes]
        cases += [(t, "init", name, s, dt) for t in threads for dt in args.dtypes for name in args.initializers
                  for s in sizes if not s.startswith("model")]
    if gpu_backends:
        cases += [(None, "gpu-opt", name, s, dt) for dt in args.dtypes for name in args.optimizers for s in sizes]
        cases += [(None, "gpu-init", name, s, dt) for dt in args.dtypes for name in args.initializers
                  for s in sizes if not s.startswith("model")]
    if not cases:
        raise UsageError("nothing to run: the options select no optimizer or initializer case "
                         "(initializers have no model sizes)")
    load_before = harness.machine_load()
    bar = Progress(len(cases), "fusedopt bench", lines=True)
    rows = []
    with harness.busy_processes(args.load):
        for t, kind, name, size, dt in cases:
            if kind == "opt":
                report.set_threads(t)
                new = suite.optimizer_case(name, size, np.dtype(dt), t, cpu_backends, repeats)
            elif kind == "init":
                report.set_threads(t)
                new = suite.initializer_case(name, int(float(size)), np.dtype(dt), t, cpu_backends, repeats)
            elif kind == "gpu-opt":
                new = gpu.optimizer_case(name, size, np.dtype(dt), gpu_backends, repeats)
            else:
                new = gpu.initializer_case(name, int(float(size)), np.dtype(dt), gpu_backends, repeats)
            rows += new
            bar.update(label=f"{name} {size} {dt} " + (f"{t}T" if t else "gpu"))
    bar.close()
    load_after = harness.machine_load()
    machine = harness.machine_info()
    where = f"{machine['fusedopt_cpu']['isa']} build on {machine['cpu']}"
    if gpu_backends:
        where += f"; GPU: {gpu.device_name()}"
    load_text = f", {args.load} busy process(es) running (--load)" if args.load else ""
    print(f"fusedopt {machine['fusedopt_version']}, {where}, {repeats} rounds per case{load_text}: "
          "median ms, p90, worst, interquartile range")
    print(report.table(rows))
    notes = report.warnings(rows, load_before, load_after, own_load=args.load)
    for line in notes:
        print(f"warning: {line}", file=sys.stderr)
    if args.json:
        report.write_json(args.json, rows, repeats, load_before=load_before, load_after=load_after,
                          busy_processes=args.load, warnings=notes)
    if args.plot:
        threads_text = "/".join(str(t) for t in threads) if cpu_backends else "GPU"
        title = (f"fusedopt {machine['fusedopt_version']} on {machine['cpu']}, {threads_text} threads, "
                 f"{'/'.join(args.dtypes)}, {datetime.date.today().isoformat()}{load_text}")
        report.plot(rows, args.plot, title=title)
    bad = [r for r in rows if not r["agrees_with_reference"]]
    if bad:
        print(f"{len(bad)} implementation(s) disagreed with the reference: marked MISMATCH above", file=sys.stderr)
    return 1 if any(r["backend"] in ("fusedopt", "fusedopt-cuda") for r in bad) else 0


def info(args) -> int:
    import platform

    import fusedopt

    from .bench import harness

    cpu = fusedopt.cpu_info()
    print(f"fusedopt {fusedopt.__version__}")
    print(f"python {platform.python_version()}, numpy {np.__version__}, {platform.platform()}")
    print(f"cpu: {harness.machine_info()['cpu']}")
    print(f"isa: {cpu['isa']} (available: {', '.join(cpu['available_isas'])})")
    print(f"threads: {cpu['num_threads']} of {cpu['num_procs']} processors on the {cpu['thread_runtime']} runtime; "
          f"serial below {cpu['serial_threshold']} elements")
    print(f"build: {cpu['compiler']}, OpenMP {cpu['openmp']}")
    for module in ("torch", "cupy", "jax"):
        try:
            mod = importlib.import_module(module)
            extra = ""
            if module == "cupy":
                try:
                    extra = f", CUDA devices: {mod.cuda.runtime.getDeviceCount()}"
                except Exception as e:  # noqa: BLE001 - report any driver error as text
                    extra = f", no usable CUDA device ({type(e).__name__})"
            print(f"{module}: {getattr(mod, '__version__', '?')}{extra}")
        except ImportError:
            print(f"{module}: not installed")
    print("cuda backend: optimizers and initializers on CuPy (or other CUDA) arrays; "
          "`fusedopt bench --backends cuda,cupy,torch-cuda` times them")
    return 0


def demo(args) -> int:
    module = importlib.import_module(f"fusedopt.demo.{args.demo}")
    try:
        return module.main(args)
    except ValueError as e:  # a bad --out
        raise UsageError(str(e)) from None
    except ImportError as e:
        print(f"fusedopt demo {args.demo}: {e}", file=sys.stderr)
        return 1


def main(argv: Optional[List[str]] = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return {"bench": bench, "info": info, "demo": demo}[args.command](args)
    except UsageError as e:
        print(f"fusedopt {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
