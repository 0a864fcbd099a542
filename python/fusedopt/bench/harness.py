"""Timing rules (DESIGN.md §7): one process, the same data, implementations interleaved, medians with
their spread; and what the machine was doing meanwhile (its load, its cache size)."""

from __future__ import annotations

import contextlib
import glob
import os
import platform
import statistics
import subprocess
import sys
import time
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from .. import _core


def host_timer(call: Callable[[], object]) -> float:
    """Seconds one call takes on the host clock."""
    t0 = time.perf_counter()
    call()
    return time.perf_counter() - t0


class Timing(float):
    """A median time in seconds (it is that float) that keeps its samples, for the spread."""

    samples: List[float]

    def __new__(cls, samples: Sequence[float]) -> "Timing":
        ordered = sorted(samples)
        timing = super().__new__(cls, statistics.median(ordered))
        timing.samples = ordered
        return timing

    def quantile(self, q: float) -> float:
        """The q-quantile of the samples (linear between order statistics, as numpy's default)."""
        return float(np.quantile(self.samples, q))

    def spread(self) -> dict:
        """min, quartiles, p90 and max in ms, and the interquartile range relative to the median."""
        ms = {f"ms_{k}": 1e3 * self.quantile(q) for k, q in
              (("min", 0.0), ("q1", 0.25), ("q3", 0.75), ("p90", 0.9), ("max", 1.0))}
        ms["iqr_rel"] = (ms["ms_q3"] - ms["ms_q1"]) / (1e3 * float(self)) if self > 0 else 0.0
        return ms


# A row's timing is flagged as unstable when the middle half of its samples spans more than this
# fraction of the median, or more than one sample in ten took longer than this many medians: what a
# busy or throttling machine does to a benchmark (issue 17); a steady one stays well inside both.
WIDE_IQR = 0.20
SLOW_TAIL = 1.5


def unstable(timing: float) -> bool:
    """Whether a timing's spread is too wide to read its median as the speed (False without samples)."""
    samples = getattr(timing, "samples", None)
    if not samples or len(samples) < 4 or timing <= 0:
        return False
    s = timing.spread()
    return s["iqr_rel"] > WIDE_IQR or s["ms_p90"] > SLOW_TAIL * 1e3 * float(timing)


def time_interleaved(steps: Dict[str, Callable[[], object]], repeats: int, warmup: int = 3,
                     timer: Callable[[Callable[[], object]], float] = host_timer,
                     before: Callable[[], object] = lambda: None) -> Dict[str, Timing]:
    """Seconds per call of each callable, as ``timer`` measures one call: the median, as a Timing that
    keeps every sample. Each round calls all of them once, in an order that rotates from round to
    round, so drift (clock, cache, other load) hits them alike. ``before`` runs once between the
    warm-up and the timed rounds."""
    names = list(steps)
    for _ in range(warmup):
        for name in names:
            steps[name]()
    before()
    samples: Dict[str, List[float]] = {name: [] for name in names}
    for r in range(repeats):
        for name in names[r % len(names):] + names[:r % len(names)]:
            samples[name].append(timer(steps[name]))
    return {name: Timing(s) for name, s in samples.items()}


def last_level_cache_bytes() -> Optional[int]:
    """The largest CPU cache (L3 on most machines) in bytes, from sysfs; None when unknown."""
    sizes = []
    for index in glob.glob("/sys/devices/system/cpu/cpu0/cache/index*/size"):
        try:
            with open(index) as f:
                text = f.read().strip()
        except OSError:
            continue
        unit = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
        digits = text[:-1] if text[-1:].isalpha() else text
        if digits.isdigit():
            sizes.append(int(digits) * unit)
    if not sizes:
        try:
            sizes.append(int(os.sysconf("SC_LEVEL3_CACHE_SIZE")))
        except (ValueError, OSError, AttributeError):
            pass
    return max(sizes) if sizes and max(sizes) > 0 else None


def _cpu_times() -> Optional[Tuple[int, int]]:
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields), idle


def machine_load(window: float = 0.5) -> dict:
    """What else the machine is doing: the 1-minute load average and the fraction of all CPUs busy
    over ``window`` seconds while this process waits (None where the system does not say)."""
    load = {"loadavg_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None, "busy_fraction": None}
    first = _cpu_times()
    time.sleep(window)
    second = _cpu_times()
    if first and second and second[0] > first[0]:
        load["busy_fraction"] = 1 - (second[1] - first[1]) / (second[0] - first[0])
    return load


# Busier than this (the fraction of all CPUs another process keeps busy) and a benchmark's times are
# not the machine's own: warned about, with the remedy.
BUSY_FRACTION = 0.10


def loaded(load: dict) -> bool:
    busy = load.get("busy_fraction")
    return busy is not None and busy > BUSY_FRACTION


_BUSY_LOOP = """
import os, sys, time
parent, deadline = int(sys.argv[1]), float(sys.argv[2])
while time.monotonic() < deadline and os.getppid() == parent:
    for _ in range(100_000):
        pass
"""
MOST_BUSY_SECONDS = 3600.0  # a busy process ends by itself after this, whatever happens to its parent


@contextlib.contextmanager
def busy_processes(n: int) -> Iterator[None]:
    """n processes that each keep a CPU busy until the block ends (or their parent dies, or an hour
    passes): the loaded scenario of ``fusedopt bench --load N``."""
    deadline = time.monotonic() + MOST_BUSY_SECONDS
    procs = [subprocess.Popen([sys.executable, "-c", _BUSY_LOOP, str(os.getpid()), repr(deadline)],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for _ in range(n)]
    try:
        time.sleep(0.2 if n else 0.0)  # let them start spinning before the first timing
        yield
    finally:
        for proc in procs:
            proc.kill()
        for proc in procs:
            proc.wait()


def stream_probe(n: int, dtype=np.float32):
    """A callable that moves Adam's traffic (read 4 arrays, write 3) over n elements through the
    CPU driver, and the bytes it moves per call."""
    arrays = [np.ones(n, dtype) for _ in range(4)]
    p, g, m, v = ([a] for a in arrays)

    def call():
        _core.stream_adam_pattern(p, g, m, v)

    return call, 7 * n * np.dtype(dtype).itemsize


def library_versions() -> Dict[str, str]:
    """The installed versions of the libraries a benchmark may compare with or run on."""
    from importlib import metadata

    versions = {}
    for dist in metadata.distributions():
        name = (dist.metadata["Name"] or "").lower()
        if name in ("numpy", "torch", "jax", "jaxlib", "optax", "ml-dtypes", "ml_dtypes", "deepspeed", "matplotlib") \
                or name.startswith("cupy"):
            versions[name] = dist.version
    return dict(sorted(versions.items()))


def machine_info() -> dict:
    from .. import __version__

    info = {"platform": platform.platform(), "python": platform.python_version(), "numpy": np.__version__,
            "cpu": _cpu_model(), "logical_cpus": os.cpu_count(), "fusedopt_cpu": _core.cpu_info(),
            "fusedopt_version": __version__, "isa": _core.cpu_info()["isa"],
            "last_level_cache_bytes": last_level_cache_bytes(), "libraries": library_versions()}
    try:
        import torch
        info["torch"] = torch.__version__
    except ImportError:
        pass
    gpu = sys.modules.get("fusedopt.bench.gpu")  # imported only where GPU cases ran
    if gpu is not None and "cupy" in sys.modules:
        if gpu.cuda_available():  # CuPy without a driver or device: a CPU-only run
            info["gpu"] = gpu.device_name()
            info["cupy"] = sys.modules["cupy"].__version__
    return info


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def baseline_module(folder: str):
    """Another build of fusedopt installed in ``folder`` as the package ``fusedopt_old`` (a renamed
    copy of an older site-packages/fusedopt), imported for a before/after comparison in one process."""
    import importlib
    import sys

    sys.path.insert(0, folder)
    return importlib.import_module("fusedopt_old")


def builds(baseline: Optional[str]):
    """(module, label prefix) of this build, and of the ``baseline`` build when given (prefix "old ")."""
    import fusedopt

    return [(fusedopt, "")] + ([(baseline_module(baseline), "old ")] if baseline else [])
