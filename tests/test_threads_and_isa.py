"""The same bits whatever the thread count, the serial/threaded split and the instruction set."""

import numpy as np
import pytest

import fusedopt
from fusedopt import _core
from cases import CASES, case_id, make_optimizer, random_grads, random_params

SHAPES = [(200_003,), (7,), (1023,), (0,), (40_000,)]  # above the serial threshold, odd, with a tail


def trajectory(name, kwargs, dtype, steps=3):
    params = random_params(SHAPES, dtype, 21)
    opt = make_optimizer(name, params, kwargs)
    rng = np.random.default_rng(22)
    for _ in range(steps):
        opt.step(random_grads(SHAPES, dtype, rng))
    return [p.tobytes() for p in params]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("case", CASES, ids=[case_id(c) for c in CASES])
def test_every_thread_count_gives_identical_bits(case, dtype, restore_runtime):
    fusedopt.set_num_threads(1)
    one = trajectory(*case, dtype)
    _core.set_serial_threshold(0)  # every call threaded, even the small ones
    for threads in (2, 3):  # 3: chunks cut at other places than with 2, claimed by whichever thread runs
        fusedopt.set_num_threads(threads)
        assert trajectory(*case, dtype) == one, threads


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("case", CASES[::3], ids=[case_id(c) for c in CASES[::3]])
def test_every_isa_gives_identical_bits(case, dtype, restore_runtime):
    isas = fusedopt.cpu_info()["available_isas"]
    assert "baseline" in isas
    results = {}
    for isa in isas:
        _core.set_isa(isa)
        assert fusedopt.cpu_info()["isa"] == isa
        results[isa] = trajectory(*case, dtype, steps=2)
    for isa in isas:
        assert results[isa] == results["baseline"], isa


def test_thread_count_is_settable(restore_runtime):
    fusedopt.set_num_threads(1)
    assert fusedopt.get_num_threads() == 1 and fusedopt.cpu_info()["num_threads"] == 1


def test_unknown_isa_is_refused(restore_runtime):
    with pytest.raises(ValueError, match="available"):
        _core.set_isa("sse9")


def _at_offset(values, offset_bytes):
    """A copy of values whose first element lies offset_bytes past a 64-byte line."""
    itemsize = values.dtype.itemsize
    buf = np.empty(values.size + 128 // itemsize, values.dtype)
    start = (-buf.ctypes.data % 64 + offset_bytes) // itemsize
    out = buf[start:start + values.size]
    out[...] = values
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("case", CASES[::4], ids=[case_id(c) for c in CASES[::4]])
def test_the_arrays_place_in_a_cache_line_never_changes_the_bits(case, dtype, restore_runtime):
    """The SIMD loop starts its vectors on the param's first 64-byte line (scalar iterations before
    it): every offset, so every split between scalar and vector iterations, gives the same bits."""
    name, kwargs = case
    rng = np.random.default_rng(5)
    p0 = rng.standard_normal(40_003).astype(dtype)
    grads = [rng.standard_normal(40_003).astype(dtype) for _ in range(3)]
    results = set()
    for threads in (1, 2):
        fusedopt.set_num_threads(threads)
        for offset in range(0, 64, np.dtype(dtype).itemsize):
            p = _at_offset(p0, offset)
            opt = make_optimizer(name, [p], kwargs)
            for g in grads:
                opt.step([_at_offset(g, (offset * 3) % 64)])
            results.add(p.tobytes())
    assert len(results) == 1
