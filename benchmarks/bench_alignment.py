"""Adam float32 at 1e7 over arrays placed at different offsets in a 64-byte line / 4 KiB page: NumPy's
own placement (16 bytes past a page), all on a line, and staggered; 1 and 2 threads, one process,
interleaved, medians of 15 rounds.

    python benchmarks/bench_alignment.py [--n 1e7] [--repeats 15]
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

import fusedopt
from fusedopt import functional

PLACEMENTS = {"all 16 (numpy default)": (16, 16, 16, 16), "all 0": (0, 0, 0, 0),
              "staggered 0/1024/2048/3072": (0, 1024, 2048, 3072), "p,g 16; m,v 1040/2064": (16, 16, 1040, 2064)}


def placed(n: int, offset_bytes: int) -> np.ndarray:
    """n float32 elements starting offset_bytes past a 4 KiB page."""
    buf = np.empty(n + 4096, np.float32)
    start = (-buf.ctypes.data % 4096 + offset_bytes) // 4
    return buf[start:start + n]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=float, default=1e7)
    ap.add_argument("--repeats", type=int, default=15)
    args = ap.parse_args(argv)
    n = int(args.n)
    data = {}
    for name, offsets in PLACEMENTS.items():
        p, g, m, v = (placed(n, o) for o in offsets)
        p[:], g[:], m[:], v[:] = 1.0, 0.1, 0.0, 0.0
        data[name] = (p, g, m, v)
    for threads in (1, 2):
        fusedopt.set_num_threads(threads)
        times = {name: [] for name in PLACEMENTS}
        for r in range(args.repeats):
            for name, (p, g, m, v) in data.items():
                t0 = time.perf_counter()
                functional.adam([p], [g], [m], [v], step=r + 1, lr=1e-3)
                times[name].append(time.perf_counter() - t0)
        for name in PLACEMENTS:
            print(f"{threads} thread(s)  {name:28} {np.median(times[name]) * 1e3:.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
