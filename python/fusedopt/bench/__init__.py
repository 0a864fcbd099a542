"""Benchmark harness shared by ``benchmarks/*.py`` (and the ``fusedopt bench`` command to come):
interleaved timing, the bandwidth probe, byte models and the implementations compared."""

import fusedopt as _fusedopt

# One thread runtime for a whole run: a backend that imports fusedopt.torch would otherwise move every
# later fusedopt row onto torch's OpenMP team (fusedopt.set_thread_runtime). FUSEDOPT_THREAD_RUNTIME
# picks it; the JSON's machine info records it (cpu_info()["thread_runtime"]).
_fusedopt.set_thread_runtime(_fusedopt.get_thread_runtime())
