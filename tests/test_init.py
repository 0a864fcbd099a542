"""Initializers: Philox known answers, distributions (moments, bounds, Kolmogorov–Smirnov),
torch.nn.init's formulas (written out here from its documentation), reproducibility, bad input."""

import math

import numpy as np
import pytest
from scipy import stats

import fusedopt
from fusedopt import _core, init, reference

N = 200_003  # odd, > the serial threshold: the threaded path and a partial last block


# --- the generator -------------------------------------------------------------------------------

# Random123's kat_vectors for philox4x32_10: counter, key -> output.
KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF, 0xFFFFFFFF), (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]


@pytest.mark.parametrize("counter,key,expected", KAT)
def test_philox_known_answers(counter, key, expected):
    assert _core.philox4x32_10(list(counter), list(key)) == expected


def test_uniform_float32_is_made_from_the_top_24_bits():
    out = init.uniform((8,), seed=5)
    words = [w for block in range(2) for w in _core.philox4x32_10([block, 0, 0, 0], [5, 0])]
    expected = np.array([(w >> 8) * 2.0**-24 for w in words], np.float32)
    assert out.tobytes() == expected.tobytes()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_isa_fills_from_the_generators_words(dtype, restore_runtime):
    """Enough blocks for the SIMD lanes of every ISA (philox_lanes.hpp) and a tail: each value from the
    words of the scalar generator (the known-answer-tested one above)."""
    n = 4 * 1000 + 3 if dtype == np.float32 else 2 * 1000 + 1
    blocks = [_core.philox4x32_10([b, 0, 0, 0], [5, 0]) for b in range(1001)]
    if dtype == np.float32:
        expected = np.array([(w >> 8) * 2.0**-24 for block in blocks for w in block][:n], np.float32)
    else:
        expected = np.array([(((block[k] << 32) | block[k + 1]) >> 11) * 2.0**-53
                             for block in blocks for k in (0, 2)][:n], np.float64)
    for isa in _core.cpu_info()["available_isas"]:
        _core.set_isa(isa)
        assert init.uniform((n,), seed=5, dtype=dtype).tobytes() == expected.tobytes(), isa


# --- distributions -------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_uniform_distribution(dtype):
    x = init.uniform((N,), -3.0, 5.0, dtype=dtype, seed=11).astype(np.float64)
    assert x.min() >= -3.0 and x.max() < 5.0
    assert stats.kstest(x, stats.uniform(loc=-3, scale=8).cdf).pvalue > 1e-3
    assert abs(x.mean() - 1.0) < 5 * 8 / math.sqrt(12 * N)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_normal_distribution(dtype):
    x = init.normal((N,), 2.0, 3.0, dtype=dtype, seed=12).astype(np.float64)
    assert stats.kstest(x, stats.norm(loc=2, scale=3).cdf).pvalue > 1e-3
    assert abs(x.mean() - 2.0) < 5 * 3 / math.sqrt(N)
    assert abs(x.std() / 3.0 - 1) < 5 / math.sqrt(2 * N)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_truncated_normal_distribution(dtype):
    x = init.trunc_normal((N,), 1.0, 2.0, -1.0, 4.0, dtype=dtype, seed=13).astype(np.float64)
    assert x.min() >= -1.0 and x.max() <= 4.0
    target = stats.truncnorm((-1.0 - 1.0) / 2.0, (4.0 - 1.0) / 2.0, loc=1.0, scale=2.0)
    assert stats.kstest(x, target.cdf).pvalue > 1e-3


@pytest.mark.parametrize("dtype", [np.float16, "bfloat16"])
def test_half_precision_outputs(dtype):
    u = init.uniform((N,), 0.0, 1.0, dtype=dtype, seed=14)
    n = init.normal((N,), dtype=dtype, seed=15)
    if dtype == "bfloat16" and u.dtype == np.uint16:  # bit patterns (ml_dtypes not installed)
        u, n = (np.asarray(a, np.uint32) << 16 for a in (u, n))
        u, n = u.view(np.float32), n.view(np.float32)
    u, n = u.astype(np.float64), n.astype(np.float64)
    assert u.min() >= 0.0 and u.max() < 1.0
    assert abs(u.mean() - 0.5) < 0.01 and abs(n.mean()) < 0.02 and abs(n.std() - 1) < 0.02


# --- torch.nn.init's formulas ----------------------------------------------------------------------

SHAPES = [(64, 96), (32, 16, 5), (24, 12, 3, 3), (8, 6, 3, 3, 3)]


def torch_fans(shape, layout):
    """torch.nn.init._calculate_fan_in_and_fan_out, and its mirror for (*kernel, in, out)."""
    if layout == "out_in":
        rf = math.prod(shape[2:])
        return shape[1] * rf, shape[0] * rf
    rf = math.prod(shape[:-2])
    return shape[-2] * rf, shape[-1] * rf


CASES = [  # (initializer, kwargs, "uniform" bound or "normal" std from torch's docs)
    ("xavier_uniform_", dict(gain=1.5), lambda fi, fo: ("uniform", 1.5 * math.sqrt(6 / (fi + fo)))),
    ("xavier_normal_", dict(gain=0.5), lambda fi, fo: ("normal", 0.5 * math.sqrt(2 / (fi + fo)))),
    # default a=0 is leaky_relu's negative slope: gain √(2/(1+0²)) = √2
    ("kaiming_uniform_", dict(), lambda fi, fo: ("uniform", math.sqrt(2) * math.sqrt(3 / fi))),
    ("kaiming_uniform_", dict(a=math.sqrt(5)), lambda fi, fo: ("uniform", math.sqrt(2 / 6) * math.sqrt(3 / fi))),
    ("kaiming_normal_", dict(mode="fan_out", nonlinearity="relu"), lambda fi, fo: ("normal", math.sqrt(2) / math.sqrt(fo))),
    ("kaiming_normal_", dict(nonlinearity="tanh"), lambda fi, fo: ("normal", (5 / 3) / math.sqrt(fi))),
    ("lecun_uniform_", dict(), lambda fi, fo: ("uniform", math.sqrt(3 / fi))),
    ("lecun_normal_", dict(), lambda fi, fo: ("normal", math.sqrt(1 / fi))),
]


@pytest.mark.parametrize("layout", ["out_in", "in_out"])
@pytest.mark.parametrize("shape", SHAPES, ids=[str(s) for s in SHAPES])
@pytest.mark.parametrize("name,kwargs,formula", CASES, ids=[f"{c[0]}{c[1]}" for c in CASES])
def test_initializer_follows_torch_formula(name, kwargs, formula, shape, layout):
    fan_in, fan_out = torch_fans(shape, layout)
    kind, value = formula(fan_in, fan_out)
    w = getattr(init, name)(np.empty(shape, np.float32), layout=layout, seed=21, **kwargs).astype(np.float64)
    n = w.size
    if kind == "uniform":
        # the bound itself is rounded to float32 (relative 6e-8) before it is used
        assert np.abs(w).max() < value * (1 + 1e-7) and np.abs(w).max() > value * (1 - 20 / n)
        assert abs(w.std() / (value / math.sqrt(3)) - 1) < 6 / math.sqrt(n)
    else:
        assert abs(w.std() / value - 1) < 6 / math.sqrt(2 * n)
        assert abs(w.mean()) < 6 * value / math.sqrt(n)


@pytest.mark.parametrize("layout", ["out_in", "in_out"])
@pytest.mark.parametrize("shape", SHAPES, ids=[str(s) for s in SHAPES])
def test_reference_statistics_match_torch_formulas(shape, layout):
    fan_in, fan_out = torch_fans(shape, layout)
    assert reference.fan_in_and_fan_out(shape, layout) == (fan_in, fan_out) == init.fans(shape, layout)
    assert reference.xavier_uniform_bound(shape, 2.0, layout) == pytest.approx(2 * math.sqrt(6 / (fan_in + fan_out)))
    assert reference.xavier_normal_std(shape, 1.0, layout) == pytest.approx(math.sqrt(2 / (fan_in + fan_out)))
    assert reference.kaiming_uniform_bound(shape, 0.0, "fan_out", "relu", layout) == pytest.approx(
        math.sqrt(2) * math.sqrt(3 / fan_out))
    assert reference.lecun_uniform_bound(shape, layout) == pytest.approx(math.sqrt(3 / fan_in))
    assert reference.lecun_normal_std(shape, layout) == pytest.approx(math.sqrt(1 / fan_in))


@pytest.mark.parametrize("name", ["xavier_normal_", "kaiming_normal_", "lecun_normal_"])
def test_truncated_variant_is_the_jax_form(name):
    shape = (256, 300)
    std = {"xavier_normal_": math.sqrt(2 / 556), "kaiming_normal_": math.sqrt(2) / math.sqrt(300),
           "lecun_normal_": math.sqrt(1 / 300)}[name]
    w = getattr(init, name)(np.empty(shape), truncated=True, seed=22)
    bound = 2 * std / 0.87962566103423978
    assert np.abs(w).max() <= bound
    assert abs(w.std() / std - 1) < 0.01  # the correction makes the truncated std the target std


@pytest.mark.parametrize("nonlinearity,param,expected", [
    ("linear", None, 1.0), ("conv2d", None, 1.0), ("sigmoid", None, 1.0), ("tanh", None, 5 / 3),
    ("relu", None, math.sqrt(2)), ("leaky_relu", None, math.sqrt(2 / (1 + 0.01**2))),
    ("leaky_relu", 0.2, math.sqrt(2 / 1.04)), ("selu", None, 0.75),
])
def test_calculate_gain_is_torch_table(nonlinearity, param, expected):
    assert init.calculate_gain(nonlinearity, param) == pytest.approx(expected)
    assert reference.gain(nonlinearity, param) == pytest.approx(expected)


def test_constant_eye_orthogonal():
    assert (init.zeros_(np.ones((3, 4))) == 0).all() and (init.ones((2, 2)) == 1).all()
    assert (init.constant_(np.empty(5, np.float32), 0.25) == 0.25).all()
    assert (init.eye((3, 5)) == np.eye(3, 5)).all()
    for shape in [(6, 6), (4, 9), (9, 4), (5, 2, 3)]:
        q = init.orthogonal(shape, gain=2.0, dtype=np.float64, seed=3).reshape(shape[0], -1)
        small = min(q.shape)
        gram = q @ q.T if q.shape[0] == small else q.T @ q
        np.testing.assert_allclose(gram, 4.0 * np.eye(small), atol=1e-12)


def test_aliases():
    assert init.glorot_uniform_ is init.xavier_uniform_ and init.he_normal_ is init.kaiming_normal_
    assert init.glorot_normal is init.xavier_normal and init.he_uniform is init.kaiming_uniform


# --- reproducibility -------------------------------------------------------------------------------

@pytest.mark.parametrize("name,dtype", [("uniform", np.float32), ("normal", np.float32), ("normal", np.float64),
                                        ("trunc_normal", np.float32), ("normal", np.float16)])
def test_same_bits_for_any_thread_count_and_split(name, dtype, restore_runtime):
    results = []
    for threads, threshold in [(1, 8192), (2, 8192), (2, 0), (2, 10**9)]:
        fusedopt.set_num_threads(threads)
        _core.set_serial_threshold(threshold)
        results.append(getattr(init, name)((N,), dtype=dtype, seed=31).tobytes())
    assert all(r == results[0] for r in results)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_values_depend_only_on_index(dtype):
    long = init.normal((1001,), dtype=dtype, seed=32)
    for n in [1, 2, 3, 5, 7, 1000]:
        assert init.normal((n,), dtype=dtype, seed=32).tobytes() == long[:n].tobytes()


def test_generator_streams_and_replay():
    g = init.Generator(7)
    a, b = init.normal((100,), generator=g), init.normal((100,), generator=g)
    assert not np.array_equal(a, b)
    g2 = init.Generator(7)
    assert np.array_equal(init.normal((100,), generator=g2), a) and np.array_equal(init.normal((100,), generator=g2), b)
    fusedopt.manual_seed(9)
    c = init.uniform((50,))
    fusedopt.manual_seed(9)
    assert np.array_equal(init.uniform((50,)), c)
    assert not np.array_equal(init.uniform((50,), seed=1), init.uniform((50,), seed=2))


# --- bad input -------------------------------------------------------------------------------------

def _read_only(shape):
    a = np.zeros(shape, np.float32)
    a.setflags(write=False)
    return a


BAD = [
    ("1-D for a fan-based init", lambda a: init.xavier_uniform_(a[0]), ValueError, "2 dimensions"),
    ("unknown nonlinearity", lambda a: init.kaiming_uniform_(a, nonlinearity="swish"), ValueError, "swish"),
    ("bad mode", lambda a: init.kaiming_normal_(a, mode="fan_avg"), ValueError, "mode"),
    ("bad layout", lambda a: init.lecun_normal_(a, layout="io"), ValueError, "layout"),
    ("negative std", lambda a: init.normal_(a, 0.0, -1.0), ValueError, "std"),
    ("nan std", lambda a: init.normal_(a, 0.0, math.nan), ValueError, "std"),
    ("a >= b", lambda a: init.uniform_(a, 1.0, 1.0), ValueError, "a < b"),
    ("trunc a >= b", lambda a: init.trunc_normal_(a, 0.0, 1.0, 2.0, -2.0), ValueError, "a < b"),
    ("non-contiguous", lambda a: init.normal_(a[:, ::2]), ValueError, "contiguous"),
    ("int dtype", lambda a: init.uniform_(np.zeros((3, 3), np.int32)), TypeError, "int32"),
    ("not an array", lambda a: init.normal_([1.0, 2.0]), TypeError, "list"),
    ("generator and seed", lambda a: init.normal_(a, generator=init.Generator(1), seed=1), ValueError, "generator"),
    ("negative seed", lambda a: init.normal_(a, seed=-1), ValueError, "seed"),
    ("bad leaky slope", lambda a: init.kaiming_uniform_(a, a="x"), ValueError, "negative_slope"),
]


@pytest.mark.parametrize("call,error,words", [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_bad_input_raises_and_changes_nothing(call, error, words):
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    before = a.copy()
    with pytest.raises(error, match=words):
        call(a)
    assert a.tobytes() == before.tobytes()


def test_read_only_target_is_refused():
    a = _read_only((3, 4))
    with pytest.raises(ValueError, match="read-only"):
        init.uniform_(a)
    assert not a.any()


@pytest.mark.parametrize("name,dtype", [("uniform", np.float32), ("normal", np.float32), ("normal", np.float64),
                                        ("trunc_normal", np.float64), ("normal", np.float16)])
def test_same_bits_on_every_isa(name, dtype, restore_runtime):
    results = {}
    for isa in _core.cpu_info()["available_isas"]:
        _core.set_isa(isa)
        results[isa] = getattr(init, name)((10_001,), dtype=dtype, seed=33).tobytes()
    assert all(r == results["baseline"] for r in results.values())
