"""Adam float32 at 1e7 over arrays placed at different offsets in a 64-byte line / 4 KiB page: NumPy's
own placement (16 bytes past a page), all on a line, and staggered; 1 and 2 threads, one process,
interleaved, medians of 15 rounds.

    python benchmarks/bench_alignment.py
"""
import numpy as np, time, sys, fusedopt
from fusedopt import functional as F
n = 10_000_000
def arr(off):
    b = np.empty(n + 4096, np.float32)
    a0 = (-b.ctypes.data % 4096) // 4
    return b[a0 + off // 4: a0 + off // 4 + n]
cases = {"all 16 (numpy default)": (16, 16, 16, 16), "all 0": (0, 0, 0, 0), "staggered 0/1024/2048/3072": (0, 1024, 2048, 3072),
         "p,g 16; m,v staggered": (16, 16, 1040, 2064)}
data = {k: [arr(o) for o in offs] for k, offs in cases.items()}
for arrs in data.values():
    arrs[0][:] = 1; arrs[1][:] = 0.1; arrs[2][:] = 0; arrs[3][:] = 0
for threads in (1, 2):
    fusedopt.set_num_threads(threads)
    ts = {k: [] for k in cases}
    for r in range(15):
        for k, (p, g, m, v) in data.items():
            t0 = time.perf_counter(); F.adam([p], [g], [m], [v], step=r + 1, lr=1e-3); ts[k].append(time.perf_counter() - t0)
    for k in cases:
        print(threads, "T", f"{k:28}", f"{np.median(ts[k]) * 1e3:.2f} ms")
