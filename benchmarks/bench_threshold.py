"""Picks the serial threshold of the CPU drivers: below how many elements one thread beats an
OpenMP region. Times fused Adam fp32 on one tensor, serial vs threaded, interleaved, medians.

    python benchmarks/bench_threshold.py [--threads 2] [--repeats 300]
"""

from __future__ import annotations

import argparse

import numpy as np

import fusedopt
from fusedopt import _core
from fusedopt.bench import harness, impls


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=300)
    args = ap.parse_args(argv)
    fusedopt.set_num_threads(args.threads)
    default = _core.cpu_info()["serial_threshold"]
    print(f"{'elements':>9} {'serial us':>10} {'threaded us':>12} {'threaded/serial':>16}")
    for n in [2**k for k in range(10, 21)]:
        params, grads = impls.make_data([(n,)], np.float32)
        impl = impls.fusedopt_impl("adam", dict(lr=1e-3), params, grads)

        def serial():
            _core.set_serial_threshold(2**62)
            impl.step()

        def threaded():
            _core.set_serial_threshold(0)
            impl.step()

        t = harness.time_interleaved({"serial": serial, "threaded": threaded}, args.repeats)
        print(f"{n:9d} {t['serial'] * 1e6:10.1f} {t['threaded'] * 1e6:12.1f} {t['threaded'] / t['serial']:16.2f}")
    _core.set_serial_threshold(default)


if __name__ == "__main__":
    main()
