"""Adafactor (fusedopt.Adafactor, fusedopt.functional.adafactor, fusedopt.torch.Adafactor) against the
float64 NumPy reference over an option grid and shapes of every kind (0-d, vectors, matrices with one
row or one column, batches of matrices, empty, large enough for the threads), against torch.optim
itself, the same bits for any thread count and ISA, and bad input refused with nothing changed.

Tolerances are those of tests/test_optimizers_vs_reference.py (the same reasoning: float32 keeps its
state in float32, about ten roundings per element per step over 20 steps). The row and column means
and the norms are summed in float64 by both, in different orders: below an ulp of float32."""

import math

import numpy as np
import pytest

import fusedopt
from fusedopt import _core, reference
from fusedopt.functional import adafactor

TOLERANCE = {np.float32: dict(rtol=2e-5, atol=2e-6), np.float64: dict(rtol=1e-10, atol=1e-12)}
STEPS = 20

SHAPES = {
    "vectors": [(7,), (), (1,), (1023,)],
    "matrices": [(33, 150), (1, 5), (5, 1), (2, 3, 4), (3, 40, 50)],
    # above the serial threshold; the first three too large to be done whole by one thread (its p and g
    # over 4 MiB: pass by pass, bands over the threads; 16,500 columns: two bands per row block), the
    # others small enough (all passes in cache)
    "threaded": [(800, 700), (600_001,), (40, 16_500), (300, 129), (40_003,), (4, 70, 90), (2000, 3), (3, 2500)],
    "empty": [(0,), (3, 0, 2), (0, 4), (5,)],
}

OPTIONS = [
    {},
    dict(lr=0.05, weight_decay=0.1),
    dict(maximize=True, beta2_decay=-0.5),
    dict(eps=(1e-30, 1e-2), d=2.0),
    dict(lr=0.5, beta2_decay=0.0),  # rho = 1/sqrt(t) for the first steps; beta2 = 0 (no averaging)
    dict(eps=(1e-3, 0.0), weight_decay=0.01, lr=1e-3),
]


def _id(kwargs):
    return "-".join(f"{k}={v}" for k, v in kwargs.items()) or "defaults"


def random_arrays(shapes, dtype, rng):
    return [rng.standard_normal(s).astype(dtype) for s in shapes]


def assert_close(actual, desired, dtype, what):
    tol = TOLERANCE[dtype]
    scale = max(1.0, float(np.max(np.abs(desired), initial=0.0)))
    np.testing.assert_allclose(actual, desired, rtol=tol["rtol"], atol=tol["atol"] * scale, err_msg=what)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("layout", list(SHAPES))
@pytest.mark.parametrize("kwargs", OPTIONS, ids=[_id(k) for k in OPTIONS])
def test_optimizer_matches_the_reference(kwargs, layout, dtype):
    shapes = SHAPES[layout]
    rng = np.random.default_rng(0)
    params = random_arrays(shapes, dtype, rng)
    ref_params = [p.astype(np.float64) for p in params]
    ref_states = [{} for _ in params]
    ref_kwargs = dict(kwargs)
    opt = fusedopt.Adafactor(params, **kwargs)
    for t in range(STEPS):
        if t == STEPS // 2:  # a schedule changes lr mid-run
            opt.param_groups[0]["lr"] *= 0.3
            ref_kwargs["lr"] = opt.param_groups[0]["lr"]
        grads = random_arrays(shapes, dtype, rng)
        opt.step(grads)
        for p, g, s in zip(ref_params, grads, ref_states):
            reference.adafactor(p, g.astype(np.float64), s, eps1_dtype=dtype, **ref_kwargs)
    for i, (p, p_ref) in enumerate(zip(params, ref_params)):
        assert_close(p, p_ref, dtype, f"param {i} {p.shape}")
        for key in ("row_var", "col_var", "variance"):
            if key in ref_states[i]:
                assert opt.state[i][key].shape == np.shape(ref_states[i][key])
                assert_close(opt.state[i][key], ref_states[i][key], dtype, f"state[{i}][{key!r}]")
            else:
                assert key not in opt.state[i]
        assert opt.state[i]["step"] == STEPS


def test_functional_with_two_calls_equals_the_class_and_groups_keep_their_own_hyperparameters():
    rng = np.random.default_rng(1)
    shapes = [(6, 9), (9,)]
    a, b = random_arrays(shapes, np.float64, rng), random_arrays(shapes, np.float64, rng)
    params = [p.copy() for p in a + b]
    opt = fusedopt.Adafactor([{"params": params[:2]}, {"params": params[2:], "lr": 0.2, "weight_decay": 0.3}])
    fa, fb = [p.copy() for p in a], [p.copy() for p in b]
    state_a = ([np.zeros((6, 1)), None], [np.zeros((1, 9)), None], [None, np.zeros(9)])
    state_b = ([np.zeros((6, 1)), None], [np.zeros((1, 9)), None], [None, np.zeros(9)])
    for t in range(1, 6):
        ga, gb = random_arrays(shapes, np.float64, rng), random_arrays(shapes, np.float64, rng)
        opt.step(ga + gb)
        adafactor(fa, ga, *state_a, step=t)
        adafactor(fb, gb, *state_b, step=t, lr=0.2, weight_decay=0.3)
    for p, q in zip(params, fa + fb):
        assert p.tobytes() == q.tobytes()


def trajectory(dtype, steps=3):
    shapes = SHAPES["threaded"] + SHAPES["vectors"]
    rng = np.random.default_rng(21)
    params = random_arrays(shapes, dtype, rng)
    opt = fusedopt.Adafactor(params, weight_decay=0.01)
    for _ in range(steps):
        opt.step(random_arrays(shapes, dtype, rng))
    return [p.tobytes() for p in params] + [v.tobytes() for s in opt.state.values() for k, v in s.items()
                                            if k != "step"]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_one_and_two_threads_and_every_isa_give_identical_bits(dtype, restore_runtime):
    fusedopt.set_num_threads(1)
    one = trajectory(dtype)
    fusedopt.set_num_threads(2)
    _core.set_serial_threshold(0)  # every call threaded, even the small ones
    assert trajectory(dtype) == one
    for isa in fusedopt.cpu_info()["available_isas"]:
        _core.set_isa(isa)
        assert trajectory(dtype) == one, isa


# --- bad input: a clear error, and nothing changes ----------------------------------------------------

def _functional_arrays():
    rng = np.random.default_rng(3)
    p = [rng.standard_normal((4, 5)).astype(np.float32), rng.standard_normal(6).astype(np.float32)]
    g = [rng.standard_normal((4, 5)).astype(np.float32), rng.standard_normal(6).astype(np.float32)]
    rows = [np.full((4, 1), 0.5, np.float32), None]
    cols = [np.full((1, 5), 0.5, np.float32), None]
    variances = [None, np.full(6, 0.5, np.float32)]
    return p, g, rows, cols, variances


def _set(k, i, value):
    """A change to the functional's lists: entry i of list k (params, grads, rows, cols, variances)."""

    def change(lists):
        lists[k][i] = value(lists) if callable(value) else value

    return change


def _read_only(a):
    a.flags.writeable = False
    return a


def _grad_inside_the_row_factor(lists):
    big = np.zeros(16, np.float32)
    lists[2][0] = big[:4].reshape(4, 1)
    lists[1][1] = big[2:8]  # the vector's grad overlaps the matrix's row factor, which the step writes


BAD_LISTS = [
    ("row factor of the wrong shape", _set(2, 0, np.zeros((4, 5), np.float32)), ValueError,
     r"row_vars\[0\]: shape \(4, 5\) is not \(4, 1\)"),
    ("column factor of the wrong shape", _set(3, 0, np.zeros((5, 1), np.float32)), ValueError, r"col_vars\[0\].*\(1, 5\)"),
    ("no row factor", _set(2, 0, None), ValueError, r"row_vars\[0\]: required"),
    ("a variance for a matrix", _set(4, 0, np.zeros((4, 5), np.float32)), ValueError, r"variances\[0\]: expected None"),
    ("a row factor for a vector", _set(2, 1, np.zeros((6, 1), np.float32)), ValueError, r"row_vars\[1\]: expected None"),
    ("no variance", _set(4, 1, None), ValueError, r"variances\[1\]: required"),
    ("float64 state", _set(4, 1, np.zeros(6)), TypeError, r"variances\[1\]: dtype float64"),
    ("read-only state", _set(2, 0, lambda l: _read_only(np.zeros((4, 1), np.float32))), ValueError, "read-only"),
    ("non-contiguous state", _set(3, 0, np.zeros((1, 10), np.float32)[:, ::2]), ValueError, "not C-contiguous"),
    ("grad of another shape", _set(1, 0, np.zeros((5, 4), np.float32)), ValueError, r"grads\[0\]: shape"),
    ("a list", _set(4, 1, [0.0] * 6), TypeError, "expected a numpy.ndarray"),
    ("state sharing the param's memory", _set(4, 1, lambda l: l[0][1]), ValueError, "shares memory"),
    ("grad inside a row factor", _grad_inside_the_row_factor, ValueError, "shares memory"),
    ("one list too short", lambda l: l[3].pop(), ValueError, "col_vars: expected 2 entries"),
]


@pytest.mark.parametrize("what,change,error,words", BAD_LISTS, ids=[b[0] for b in BAD_LISTS])
def test_bad_arrays_are_refused_naming_the_entry_and_nothing_changes(what, change, error, words):
    lists = [list(x) for x in _functional_arrays()]
    change(lists)
    before = [[a.copy() if isinstance(a, np.ndarray) else None for a in x] for x in lists]
    with pytest.raises(error, match=words):
        adafactor(*lists, step=1)
    for x, saved in zip(lists, before):
        for a, b in zip(x, saved):
            if b is not None:
                assert a.tobytes() == b.tobytes(), what


BAD_HYPERS = [(name, value, error) for h in adafactor.spec.hypers for value, error in h.check.bad_values()
              for name in [h.name]]


@pytest.mark.parametrize("name,value,error", BAD_HYPERS, ids=[f"{n}={v!r}" for n, v, _ in BAD_HYPERS])
def test_bad_hyperparameters_are_refused_and_nothing_changes(name, value, error):
    lists = _functional_arrays()
    before = [[None if a is None else a.copy() for a in x] for x in lists]
    with pytest.raises(error, match=name):
        adafactor(*lists, step=1, **{name: value})
    with pytest.raises(error, match=name):
        fusedopt.Adafactor([np.zeros(3, np.float32)], **{name: value})
    for x, saved in zip(lists, before):
        for a, b in zip(x, saved):
            if b is not None:
                assert a.tobytes() == b.tobytes()


def test_the_optimizer_names_state_entries_and_changes_nothing_when_one_is_wrong():
    rng = np.random.default_rng(4)
    params = random_arrays([(4, 5), (6,)], np.float32, rng)
    opt = fusedopt.Adafactor(params)
    opt.step(random_arrays([(4, 5), (6,)], np.float32, rng))
    opt.state[1]["variance"] = np.zeros(7, np.float32)
    saved = [p.copy() for p in params] + [opt.state[0]["row_var"].copy()]
    with pytest.raises(ValueError, match=r"state\[1\]\['variance'\]: shape \(7,\)"):
        opt.step(random_arrays([(4, 5), (6,)], np.float32, rng))
    assert all(a.tobytes() == b.tobytes() for a, b in zip(params + [opt.state[0]["row_var"]], saved))
    assert opt.state[0]["step"] == 1
    state_dict = opt.state_dict()
    state_dict["state"][0]["row_var"] = np.zeros((4, 5), np.float32)
    with pytest.raises(ValueError, match=r"row_var.*shape \(4, 5\) does not match row_var of param 0 shape \(4, 1\)"):
        opt.load_state_dict(state_dict)
    state_dict["state"][0]["row_var"] = np.zeros((4, 1), np.float32)
    state_dict["state"][0]["variance"] = np.zeros((4, 5), np.float32)
    with pytest.raises(ValueError, match="has no 'variance' state"):
        opt.load_state_dict(state_dict)


def test_a_state_dict_round_trip_continues_to_the_same_bits():
    rng = np.random.default_rng(5)
    shapes = [(8, 3), (2, 4, 5), (11,)]
    params = random_arrays(shapes, np.float32, rng)
    opt = fusedopt.Adafactor(params, lr=0.03)
    grads = [random_arrays(shapes, np.float32, rng) for _ in range(6)]
    for g in grads[:3]:
        opt.step(g)
    copies = [p.copy() for p in params]
    other = fusedopt.Adafactor(copies)
    other.load_state_dict(opt.state_dict())
    for g in grads[3:]:
        opt.step(g)
        other.step(g)
    assert [p.tobytes() for p in params] == [p.tobytes() for p in copies]


# --- against torch.optim.Adafactor ---------------------------------------------------------------------

torch_cases = [dict(), dict(lr=0.05, weight_decay=0.1, maximize=True), dict(eps=[1e-4, 1e-2], d=1.5, beta2_decay=-0.6)]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kwargs", torch_cases, ids=[_id(k) for k in torch_cases])
def test_torch_adapter_trains_as_torch_optim_adafactor(kwargs, dtype):
    torch = pytest.importorskip("torch")
    import fusedopt.torch as ft

    dtype = getattr(torch, dtype)
    gen = torch.Generator().manual_seed(0)
    shapes = [(6, 5), (5,), (2, 3, 4), (), (1, 7)]
    start = [torch.randn(s, generator=gen, dtype=dtype) for s in shapes]
    theirs = [p.clone().requires_grad_() for p in start]
    ours = [p.clone().requires_grad_() for p in start]
    opts = torch.optim.Adafactor(theirs, **kwargs), ft.Adafactor(ours, **kwargs)
    for _ in range(8):
        grads = [torch.randn(s, generator=gen, dtype=dtype) for s in shapes]
        for params, opt in zip((theirs, ours), opts):
            for p, g in zip(params, grads):
                p.grad = g.clone()
            opt.step()
    tol = dict(rtol=2e-5, atol=2e-6) if dtype == torch.float32 else dict(rtol=1e-10, atol=1e-12)
    for p, q in zip(theirs, ours):
        torch.testing.assert_close(q, p, **tol)
    for p, q in zip(theirs, ours):
        mine, torchs = opts[1].state[q], opts[0].state[p]
        assert set(mine) == set(torchs)
        for key in torchs:
            torch.testing.assert_close(mine[key], torchs[key], **tol)


def test_torch_adapter_state_dicts_cross_both_ways_and_bad_grads_change_nothing():
    torch = pytest.importorskip("torch")
    import fusedopt.torch as ft

    gen = torch.Generator().manual_seed(1)
    shapes = [(4, 6), (6,)]
    a = [torch.randn(s, generator=gen).requires_grad_() for s in shapes]
    b = [p.detach().clone().requires_grad_() for p in a]
    grads = [[torch.randn(s, generator=gen) for s in shapes] for _ in range(6)]
    theirs, ours = torch.optim.Adafactor(a, lr=0.02), ft.Adafactor(b, lr=0.02)
    for step, g in enumerate(grads):
        if step == 3:  # swap state dicts mid-run, each way
            saved_theirs, saved_ours = theirs.state_dict(), ours.state_dict()
            theirs.load_state_dict(saved_ours)
            ours.load_state_dict(saved_theirs)
        for params, opt in ((a, theirs), (b, ours)):
            for p, x in zip(params, g):
                p.grad = x.clone()
            opt.step()
    for p, q in zip(a, b):
        torch.testing.assert_close(q, p, rtol=2e-5, atol=2e-6)

    fresh = [torch.zeros(3, 4, requires_grad=True), torch.zeros(5, requires_grad=True)]
    opt = ft.Adafactor(fresh)
    fresh[0].grad = torch.ones(3, 4)
    fresh[1].grad = torch.ones(10)[::2]  # not contiguous
    with pytest.raises(ValueError, match=r"param_groups\[0\]\['params'\]\[1\].*contiguous"):
        opt.step()
    assert len(opt.state) == 0 and all(torch.count_nonzero(p) == 0 for p in fresh)


def test_nonfinite_gradients_spread_as_in_torch():
    torch = pytest.importorskip("torch")
    import fusedopt.torch as ft

    start = torch.randn(5, 6, generator=torch.Generator().manual_seed(2))
    theirs, ours = start.clone().requires_grad_(), start.clone().requires_grad_()
    opts = torch.optim.Adafactor([theirs]), ft.Adafactor([ours])
    grad = torch.ones(5, 6)
    grad[1, 2] = math.nan
    for p, opt in ((theirs, opts[0]), (ours, opts[1])):
        p.grad = grad.clone()
        opt.step()
    torch.testing.assert_close(ours, theirs, equal_nan=True)


# --- 16-bit storage: bfloat16 and float16 params, their state in the same type, math in float32 ---------

def _round(values, dtype):
    return np.asarray(values, np.float64).astype(np.float32).astype(dtype)


# eps1 = 1e-30 is left out: its square is 0 in float32 (and in float16, as in torch's float16 clamp), so
# a zero V̂ (a float16 g² underflows) divides by zero where the float64 reference does not.
OPTIONS_16 = OPTIONS[:3] + [dict(eps=(1e-3, 1e-2), d=2.0)]


@pytest.mark.parametrize("kwargs", OPTIONS_16, ids=[_id(k) for k in OPTIONS_16])
@pytest.mark.parametrize("name", ["bfloat16", "float16"])
def test_16_bit_adafactor_is_the_float64_reference_rounded_to_its_storage(name, kwargs):
    """Each step starts the kernel and the float64 reference from the same stored (16-bit) params and
    state. The reference stores R, C and V̂ as the kernel does (rounded to the 16-bit type, then used as
    stored) and rounds the params once at the end; the kernel stores that to within one ulp of the
    type, and bit for bit for at least 98 % of the elements: it computes in float32 where the
    reference computes in float64, which moves a result near a rounding boundary of the 16-bit type by
    one ulp, never more."""
    ml_dtypes = pytest.importorskip("ml_dtypes")
    dtype = np.dtype(ml_dtypes.bfloat16) if name == "bfloat16" else np.dtype(np.float16)
    spacing = 2.0 ** -7 if name == "bfloat16" else 2.0 ** -10  # the spacing of 1.0: eps1's default
    smallest = 2.0 ** -133 if name == "bfloat16" else 2.0 ** -24  # the spacing of the subnormals
    shapes = SHAPES["vectors"] + SHAPES["matrices"] + [(130, 2100), (40_003,)]
    rng = np.random.default_rng(8)
    params = [rng.standard_normal(s).astype(dtype) for s in shapes]
    opt = fusedopt.Adafactor(params, **kwargs)
    ref_kwargs = dict(kwargs)
    ref_kwargs["eps"] = (spacing if kwargs.get("eps", (None,))[0] is None else kwargs["eps"][0],
                         kwargs.get("eps", (None, 1e-3))[1])
    equal = total = 0
    for step in range(1, 4):
        grads = [rng.standard_normal(s).astype(dtype) for s in shapes]
        expected_params = [p.astype(np.float64) for p in params]
        expected_states = []
        for i, (p, g) in enumerate(zip(expected_params, grads)):
            state = {"step": step - 1, **{k: v.astype(np.float64) for k, v in opt.state.get(i, {}).items()
                                           if k != "step"}}
            reference.adafactor(p, g.astype(np.float64), state, store=lambda x: _round(x, dtype).astype(np.float64),
                                **ref_kwargs)
            expected_states.append(state)
        opt.step(grads)
        for i, p in enumerate(params):
            pairs = [(p, expected_params[i])] + [(opt.state[i][k], expected_states[i][k])
                                                  for k in ("row_var", "col_var", "variance") if k in opt.state[i]]
            for got, want in pairs:
                want = _round(want, dtype)
                assert got.dtype == dtype and got.shape == want.shape
                g64, w64 = got.astype(np.float64), want.astype(np.float64)
                ulp = np.maximum(np.abs(w64) * spacing, smallest)  # one spacing of the value's binade
                assert (np.abs(g64 - w64) <= ulp).all(), (step, i, np.abs(g64 - w64).max())
                equal += int((got.view(np.uint16) == want.view(np.uint16)).sum())
                total += got.size
    assert equal >= 0.98 * total, (equal, total)


@pytest.mark.parametrize("name", ["bfloat16", "float16"])
def test_16_bit_adafactor_is_the_same_for_any_thread_count_and_isa(name):
    ml_dtypes = pytest.importorskip("ml_dtypes")
    dtype = np.dtype(ml_dtypes.bfloat16) if name == "bfloat16" else np.dtype(np.float16)
    shapes = [(130, 2100), (40_003,), (4, 70, 90)]
    results = []
    for threads, isa in [(1, None), (2, None)] + [(2, i) for i in _core.cpu_info()["available_isas"]]:
        rng = np.random.default_rng(9)
        params = [rng.standard_normal(s).astype(dtype) for s in shapes]
        opt = fusedopt.Adafactor(params, lr=0.05)
        previous_threads, previous_isa = _core.get_num_threads(), _core.cpu_info()["isa"]
        try:
            _core.set_num_threads(threads)
            if isa:
                _core.set_isa(isa)
            for _ in range(3):
                opt.step([rng.standard_normal(s).astype(dtype) for s in shapes])
        finally:
            _core.set_num_threads(previous_threads)
            _core.set_isa(previous_isa)
        results.append(b"".join(p.tobytes() for p in params) +
                       b"".join(v.tobytes() for s in opt.state.values() for k, v in s.items() if k != "step"))
    assert all(r == results[0] for r in results)


@pytest.mark.parametrize("name", ["bfloat16", "float16"])
def test_16_bit_torch_adapter_tracks_torch_optim_adafactor(name):
    """fusedopt.torch.Adafactor on bfloat16/float16 tensors against torch.optim.Adafactor on the same
    ones, with the state in the params' type in both. torch rounds every intermediate to the 16-bit type
    (the decayed param, the update) and fusedopt only what it stores, so they are not bit for bit: most
    elements are equal, and every difference is within 2 spacings of the 16-bit type at the tensor's
    largest magnitude (a small element can differ by many of its own ulps: the update's rounding in
    torch is at the update's scale)."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("ml_dtypes")
    import fusedopt.torch as ft

    dtype = getattr(torch, name)
    spacing = 2.0 ** -7 if name == "bfloat16" else 2.0 ** -10
    gen = torch.Generator().manual_seed(0)
    ours = [torch.randn(s, generator=gen).to(dtype).requires_grad_(True) for s in [(30, 40), (40,), (2, 5, 6)]]
    theirs = [p.detach().clone().requires_grad_(True) for p in ours]
    opt, reference_opt = ft.Adafactor(ours, lr=0.02), torch.optim.Adafactor(theirs, lr=0.02)
    for _ in range(3):
        for p, q in zip(ours, theirs):
            p.grad = torch.randn(p.shape, generator=gen).to(dtype)
            q.grad = p.grad.clone()
        opt.step()
        reference_opt.step()
    for p, q in zip(ours, theirs):
        assert opt.state[p]["row_var" if p.dim() >= 2 else "variance"].dtype == dtype
        a, b = p.detach().double(), q.detach().double()
        assert (a - b).abs().max() <= 2 * spacing * b.abs().max()
        assert (a == b).double().mean() >= 0.8
