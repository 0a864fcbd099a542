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


def time_interleaved(steps: Dict[str, Callable[[], None]], repeats: int, warmup: int = 3) -> Dict[str, float]:
    """Median seconds per call of each callable; each round calls all of them once, in an order
    that rotates from round to round, so drift (clock, cache, other load) hits them alike."""
    names = list(steps)
    for _ in range(warmup):
        for name in names:
            steps[name]()
    samples: Dict[str, List[float]] = {name: [] for name in names}
    for r in range(repeats):
        for name in names[r % len(names):] + names[:r % len(names)]:
            t0 = time.perf_counter()
            steps[name]()
            samples[name].append(time.perf_counter() - t0)
    return {name: statistics.median(s) for name, s in samples.items()}


def stream_probe(n: int, dtype=np.float32):
    """A callable that moves Adam's traffic (read 4 arrays, write 3) over n elements through the
    CPU driver, and the bytes it moves per call."""
    arrays = [np.ones(n, dtype) for _ in range(4)]
    p, g, m, v = ([a] for a in arrays)

    def call():
        _core.stream_adam_pattern(p, g, m, v)

    return call, 7 * n * np.dtype(dtype).itemsize


# Arrays read and written per element, besides the param (read + write) and grad (read).
STATE_BUFFERS = {
    ("sgd", False): 0, ("sgd", True): 1,  # (name, momentum)
    "adagrad": 1, "rmsprop": 1, "adam": 2, "adamw": 2,
}


def bytes_per_param(optimizer: str, kwargs: dict, itemsize: int) -> int:
    """The byte model: each state buffer is read and written once, p read and written, g read."""
    if optimizer == "sgd":
        k = STATE_BUFFERS[("sgd", kwargs.get("momentum", 0) != 0)]
    else:
        k = STATE_BUFFERS[optimizer]
        if optimizer == "rmsprop":
            k += bool(kwargs.get("centered")) + (kwargs.get("momentum", 0) > 0)
        if optimizer in ("adam", "adamw") and kwargs.get("amsgrad"):
            k += 1
    return itemsize * (3 + 2 * k)


def machine_info() -> dict:
    info = {"platform": platform.platform(), "python": platform.python_version(), "numpy": np.__version__,
            "cpu": _cpu_model(), "logical_cpus": os.cpu_count(), "fusedopt_cpu": _core.cpu_info()}
    try:
        import torch
        info["torch"] = torch.__version__
    except ImportError:
        pass
    if "cupy" in sys.modules:  # CuPy was imported, so a GPU case may have run: name the device
        from . import gpu

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
