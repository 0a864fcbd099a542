"""Bad input (DESIGN.md §5): a TypeError or ValueError naming the argument and tensor index, and
not one byte of any param or state changed."""

import math

import numpy as np
import pytest

import fusedopt
from fusedopt import functional as F


def snapshot(opt):
    params = [p.copy() for p in opt._params]
    state = {i: {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in s.items()} for i, s in opt.state.items()}
    return params, state


def assert_unchanged(opt, before):
    params, state = before
    for p, p0 in zip(opt._params, params):
        assert p.tobytes() == p0.tobytes()
    assert opt.state.keys() == state.keys()
    for i, s in state.items():
        assert opt.state[i].keys() == s.keys()
        for k, v in s.items():
            assert (opt.state[i][k].tobytes() == v.tobytes()) if isinstance(v, np.ndarray) else opt.state[i][k] == v


def trained_adam(**kwargs):
    """Two params after two steps, so that state exists and must survive a failed step."""
    rng = np.random.default_rng(0)
    params = [rng.standard_normal((5, 3)).astype(np.float32), rng.standard_normal(4).astype(np.float32)]
    opt = fusedopt.Adam(params, **kwargs)
    for _ in range(2):
        opt.step([rng.standard_normal(p.shape).astype(np.float32) for p in params])
    return opt


def good_grads(opt):
    return [np.ones_like(p) for p in opt._params]


# (id, mutation of (opt, grads) before the step, exception, words the message must contain)
STEP_CASES = [
    ("grad wrong dtype", lambda o, g: g.__setitem__(1, g[1].astype(np.float64)), TypeError, ["grads[1]", "float64", "float32"]),
    ("grad int dtype", lambda o, g: g.__setitem__(0, np.ones((5, 3), np.int64)), TypeError, ["grads[0]", "int64"]),
    ("grad shape", lambda o, g: g.__setitem__(1, np.ones(5, np.float32)), ValueError, ["grads[1]", "(5,)", "(4,)"]),
    ("grad size same, shape differs", lambda o, g: g.__setitem__(0, np.ones((3, 5), np.float32)), ValueError, ["grads[0]", "shape"]),
    ("grad not an array", lambda o, g: g.__setitem__(1, [1.0, 2.0, 3.0, 4.0]), TypeError, ["grads[1]", "list"]),
    ("grad non-contiguous", lambda o, g: g.__setitem__(0, np.ones((3, 5), np.float32).T), ValueError, ["grads[0]", "contiguous"]),
    ("too few grads", lambda o, g: g.pop(), ValueError, ["grads", "2", "1"]),
    ("state without its step count", lambda o, g: o.state[1].pop("step"), ValueError, ["state[1]", "step"]),
    ("state buffer of another shape", lambda o, g: o.state[0].__setitem__("exp_avg", np.zeros(14, np.float32)), ValueError, ["state[0]['exp_avg']", "(14,)"]),
    ("negative lr", lambda o, g: o.param_groups[0].__setitem__("lr", -1e-3), ValueError, ["lr", "-0.001"]),
    ("nan lr", lambda o, g: o.param_groups[0].__setitem__("lr", math.nan), ValueError, ["lr", "nan"]),
    ("inf lr", lambda o, g: o.param_groups[0].__setitem__("lr", math.inf), ValueError, ["lr"]),
    ("string lr", lambda o, g: o.param_groups[0].__setitem__("lr", "0.1"), TypeError, ["lr", "str"]),
    ("negative eps", lambda o, g: o.param_groups[0].__setitem__("eps", -1e-8), ValueError, ["eps"]),
    ("nan weight decay", lambda o, g: o.param_groups[0].__setitem__("weight_decay", math.nan), ValueError, ["weight_decay"]),
    ("beta1 = 1", lambda o, g: o.param_groups[0].__setitem__("betas", (1.0, 0.999)), ValueError, ["betas[0]"]),
    ("beta2 < 0", lambda o, g: o.param_groups[0].__setitem__("betas", (0.9, -0.1)), ValueError, ["betas[1]"]),
    ("param made read-only", lambda o, g: o._params[1].setflags(write=False), ValueError, ["param_groups[0]['params'][1]", "read-only"]),
    ("state of wrong dtype", lambda o, g: o.state[1].__setitem__("exp_avg", np.zeros(4)), TypeError, ["state[1]['exp_avg']", "float64"]),
]


@pytest.mark.parametrize("mutate,error,words", [c[1:] for c in STEP_CASES], ids=[c[0] for c in STEP_CASES])
def test_bad_step_raises_and_changes_nothing(mutate, error, words):
    opt = trained_adam()
    grads = good_grads(opt)
    mutate(opt, grads)
    before = snapshot(opt)
    with pytest.raises(error) as info:
        opt.step(grads)
    for w in words:
        assert w in str(info.value)
    assert_unchanged(opt, before)


def test_bad_second_group_changes_neither_group():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal(6), rng.standard_normal(3)
    opt = fusedopt.SGD([{"params": [a]}, {"params": [b], "momentum": 0.9}], lr=0.1)
    opt.step([np.ones(6), np.ones(3)])
    before = snapshot(opt)
    with pytest.raises(ValueError, match="grads\\[1\\].*shape"):  # the user's index, whatever the grouping
        opt.step([np.ones(6), np.ones(4)])
    assert_unchanged(opt, before)
    with pytest.raises(TypeError, match="grads\\[1\\].*float32.*float64"):
        opt.step([np.ones(6), np.ones(3, np.float32)])
    assert_unchanged(opt, before)
    opt.param_groups[1]["lr"] = -1.0
    with pytest.raises(ValueError, match="lr"):
        opt.step([np.ones(6), np.ones(3)])
    assert_unchanged(opt, before)


def test_grads_not_a_list_are_refused_and_change_nothing():
    opt = trained_adam()
    before = snapshot(opt)
    with pytest.raises(TypeError, match="grads.*list.*generator"):
        opt.step(g for g in good_grads(opt))
    assert_unchanged(opt, before)


def test_failed_first_step_creates_no_state():
    p = np.zeros(3, np.float32)
    opt = fusedopt.Adam([p])
    with pytest.raises(TypeError, match="grads\\[0\\]"):
        opt.step([np.zeros(3, np.float64)])
    assert opt.state == {}
    assert not p.any()


def read_only_view(a):
    v = a.view()
    v.setflags(write=False)
    return v


# Constructor checks: the arrays are never touched (no state exists yet).
CONSTRUCT_CASES = [
    ("empty params", lambda p: fusedopt.Adam([]), ValueError, ["params", "empty"]),
    ("int params", lambda p: fusedopt.Adam([p.astype(np.int32)]), TypeError, ["int32"]),
    ("complex params", lambda p: fusedopt.SGD([p.astype(np.complex64)], lr=0.1), TypeError, ["complex64"]),
    ("byte-swapped params", lambda p: fusedopt.SGD([p.astype(">f4")], lr=0.1), TypeError, [">f4"]),
    ("bad state_dtype", lambda p: fusedopt.Adam([p], state_dtype="float64"), ValueError, ["state_dtype", "float64"]),
    ("state_dtype not a dtype", lambda p: fusedopt.Adam([p], state_dtype=3.5), TypeError, ["state_dtype"]),
    ("master_weights not a bool", lambda p: fusedopt.Adam([p], master_weights=1), TypeError, ["master_weights"]),
    ("negative rounding seed", lambda p: fusedopt.Adam([p], rounding_seed=-1), ValueError, ["rounding_seed"]),
    ("float rounding seed", lambda p: fusedopt.Adam([p], rounding_seed=1.5), TypeError, ["rounding_seed"]),
    ("non-contiguous param", lambda p: fusedopt.Adam([p.reshape(2, 3)[:, ::2]]), ValueError, ["[0]", "contiguous"]),
    ("read-only param", lambda p: fusedopt.Adam([read_only_view(p)]), ValueError, ["read-only"]),
    ("list instead of array", lambda p: fusedopt.Adam([[1.0, 2.0]]), TypeError, ["list"]),
    ("duplicate param", lambda p: fusedopt.Adam([p, p]), ValueError, ["more than once"]),
    ("negative lr", lambda p: fusedopt.SGD([p], lr=-0.1), ValueError, ["lr"]),
    ("nan eps", lambda p: fusedopt.Adagrad([p], eps=math.nan), ValueError, ["eps"]),
    ("negative weight decay", lambda p: fusedopt.AdamW([p], weight_decay=-1e-2), ValueError, ["weight_decay"]),
    ("beta1 >= 1", lambda p: fusedopt.Adam([p], betas=(1.5, 0.9)), ValueError, ["betas[0]"]),
    ("betas not a pair", lambda p: fusedopt.Adam([p], betas=0.9), TypeError, ["betas"]),
    ("negative momentum", lambda p: fusedopt.SGD([p], lr=0.1, momentum=-0.5), ValueError, ["momentum"]),
    ("negative rmsprop momentum", lambda p: fusedopt.RMSprop([p], momentum=-0.5), ValueError, ["momentum"]),
    ("nesterov without momentum", lambda p: fusedopt.SGD([p], lr=0.1, nesterov=True), ValueError, ["nesterov", "momentum"]),
    ("nesterov with dampening", lambda p: fusedopt.SGD([p], lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), ValueError, ["nesterov", "dampening"]),
    ("alpha > 1", lambda p: fusedopt.RMSprop([p], alpha=1.5), ValueError, ["alpha"]),
    ("negative lr_decay", lambda p: fusedopt.Adagrad([p], lr_decay=-0.1), ValueError, ["lr_decay"]),
    ("negative initial accumulator", lambda p: fusedopt.Adagrad([p], initial_accumulator_value=-1.0), ValueError, ["initial_accumulator_value"]),
    ("amsgrad not a bool", lambda p: fusedopt.Adam([p], amsgrad="yes"), TypeError, ["amsgrad"]),
]


@pytest.mark.parametrize("build,error,words", [c[1:] for c in CONSTRUCT_CASES], ids=[c[0] for c in CONSTRUCT_CASES])
def test_bad_construction_raises_and_changes_nothing(build, error, words):
    p = np.arange(6, dtype=np.float64)
    with pytest.raises(error) as info:
        build(p)
    for w in words:
        assert w in str(info.value)
    assert np.array_equal(p, np.arange(6, dtype=np.float64))


def _functional_arrays():
    rng = np.random.default_rng(2)
    params = [rng.standard_normal(5).astype(np.float32), rng.standard_normal((2, 2)).astype(np.float32)]
    grads = [np.ones_like(p) for p in params]
    m = [np.full_like(p, 0.5) for p in params]
    v = [np.full_like(p, 0.25) for p in params]
    return params, grads, m, v


FUNCTIONAL_CASES = [
    ("mixed dtypes in params", lambda P, G, M, V: P.__setitem__(1, P[1].astype(np.float64)), TypeError, ["params[1]", "float64"]),
    ("state shape", lambda P, G, M, V: M.__setitem__(1, np.zeros(4, np.float32)), ValueError, ["exp_avgs[1]", "(4,)", "(2, 2)"]),
    ("state list too short", lambda P, G, M, V: V.pop(), ValueError, ["exp_avg_sqs", "2", "1"]),
    ("read-only state", lambda P, G, M, V: V[0].setflags(write=False), ValueError, ["exp_avg_sqs[0]", "read-only"]),
    ("non-contiguous state", lambda P, G, M, V: M.__setitem__(0, np.zeros(10, np.float32)[::2]), ValueError, ["exp_avgs[0]", "contiguous"]),
    ("byte-swapped param", lambda P, G, M, V: P.__setitem__(0, P[0].astype(">f4")), TypeError, ["params[0]"]),
    ("grads empty", lambda P, G, M, V: G.clear(), ValueError, ["grads", "got 0"]),
]


@pytest.mark.parametrize("mutate,error,words", [c[1:] for c in FUNCTIONAL_CASES], ids=[c[0] for c in FUNCTIONAL_CASES])
def test_bad_functional_call_raises_and_changes_nothing(mutate, error, words):
    params, grads, m, v = _functional_arrays()
    mutate(params, grads, m, v)
    before = [a.copy() for a in params + m + v]
    with pytest.raises(error) as info:
        F.adam(params, grads, m, v, step=1)
    for w in words:
        assert w in str(info.value)
    for a, a0 in zip(params + m + v, before):
        assert a.tobytes() == a0.tobytes()


def test_functional_missing_lists_and_bad_step():
    params, grads, m, v = _functional_arrays()
    before = [a.copy() for a in params + m + v]
    with pytest.raises(ValueError, match="max_exp_avg_sqs.*amsgrad"):
        F.adam(params, grads, m, v, step=1, amsgrad=True)
    with pytest.raises(ValueError, match="momentum_buffers.*momentum"):
        F.sgd(params, grads, step=1, lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match="grad_avgs.*centered"):
        F.rmsprop(params, grads, v, step=1, centered=True)
    with pytest.raises(ValueError, match="step"):
        F.adam(params, grads, m, v, step=0)
    with pytest.raises(TypeError, match="step"):
        F.adagrad(params, grads, v, step=1.5)
    with pytest.raises(TypeError, match="params.*list"):
        F.adam(params[0], grads, m, v, step=1)
    with pytest.raises(ValueError, match="params.*empty"):
        F.adam([], [], [], [], step=1)
    for a, a0 in zip(params + m + v, before):
        assert a.tobytes() == a0.tobytes()


def test_thread_count_must_be_positive():
    with pytest.raises(ValueError, match="n"):
        fusedopt.set_num_threads(0)
