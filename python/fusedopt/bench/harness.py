"""Timing rules (DESIGN.md §7): one process, the same data, implementations interleaved, medians."""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from typing import Callable, Dict, List

import numpy as np

from .. import _core


def host_timer(call: Callable[[], object]) -> float:
    """Seconds one call takes on the host clock."""
    t0 = time.perf_counter()
    call()
    return time.perf_counter() - t0


def time_interleaved(steps: Dict[str, Callable[[], object]], repeats: int, warmup: int = 3,
                     timer: Callable[[Callable[[], object]], float] = host_timer,
                     before: Callable[[], object] = lambda: None) -> Dict[str, float]:
    """Median seconds per call of each callable, as ``timer`` measures one call; each round calls
    all of them once, in an order that rotates from round to round, so drift (clock, cache, other
    load) hits them alike. ``before`` runs once between the warm-up and the timed rounds."""
    names = list(steps)
    for _ in range(warmup):
        for name in names:
            steps[name]()
    before()
    samples: Dict[str, List[float]] = {name: [] for name in names}
    for r in range(repeats):
        for name in names[r % len(names):] + names[:r % len(names)]:
            samples[name].append(timer(steps[name]))
    return {name: statistics.median(s) for name, s in samples.items()}


def stream_probe(n: int, dtype=np.float32):
    """A callable that moves Adam's traffic (read 4 arrays, write 3) over n elements through the
    CPU driver, and the bytes it moves per call."""
    arrays = [np.ones(n, dtype) for _ in range(4)]
    p, g, m, v = ([a] for a in arrays)

    def call():
        _core.stream_adam_pattern(p, g, m, v)

    return call, 7 * n * np.dtype(dtype).itemsize


def machine_info() -> dict:
    info = {"platform": platform.platform(), "python": platform.python_version(), "numpy": np.__version__,
            "cpu": _cpu_model(), "logical_cpus": os.cpu_count(), "fusedopt_cpu": _core.cpu_info()}
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
