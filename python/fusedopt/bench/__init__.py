"""Benchmark harness shared by ``benchmarks/*.py`` (and the ``fusedopt bench`` command to come):
interleaved timing, the bandwidth probe, byte models and the implementations compared."""
