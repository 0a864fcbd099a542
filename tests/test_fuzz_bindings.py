"""Fuzzing of the entry points that reach the compiled core (the functional steps, an optimizer's
plan, the fills): random list lengths, shapes, dtypes, strides, byte offsets into one shared buffer
(so arrays overlap, touch or are misaligned), read-only arrays, aliases and hyperparameters, good and
bad. The only outcomes allowed are the reference's answer, or a TypeError/ValueError naming the
argument with not one byte changed. Whether a call is valid is decided here, independently of the
library's own checks (a pairwise overlap test, numpy's flags)."""

from typing import List, Optional

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import fusedopt
from fusedopt import functional as F
from fusedopt.functional import SPECS

from cases import REFERENCE

ARENA_BYTES = 640
TOLERANCE = {np.dtype(np.float32): dict(rtol=2e-5, atol=2e-6), np.dtype(np.float64): dict(rtol=1e-10, atol=1e-12)}
FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
EXAMPLES = 600


def new_arena(seed: int, dtype=np.float64) -> np.ndarray:
    """Random values of ``dtype`` as bytes, 64-byte aligned: views of that dtype hold finite numbers."""
    rng = np.random.default_rng(seed)
    raw = np.empty(ARENA_BYTES + 64, np.uint8)
    start = -raw.ctypes.data % 64
    arena = raw[start:start + ARENA_BYTES]
    values = arena.view(dtype)
    values[:] = rng.uniform(-2, 2, values.size).astype(dtype)
    return arena


SECOND_MOMENTS = ("exp_avg_sq", "max_exp_avg_sq", "sum", "square_avg")


def make_states_realistic(spec, lists, in_use) -> None:
    """Second moments >= 0.1 (and, centered, above the squared mean): random ones near zero or
    negative are ill-conditioned in float32, which is the reference tests' business, not this one's."""
    centered = any(b.key == "grad_avg" for b in in_use)
    for b in in_use:
        if b.key in SECOND_MOMENTS:
            for i, a in enumerate(lists[b.argument]):
                floor = lists["grad_avgs"][i] ** 2 if b.key == "square_avg" and centered else 0
                a[...] = np.abs(a) + 0.1 + floor


MODES = ["clean", "clean", "arena", "faults"]  # a call's arrays: fresh / placed anywhere / also wrong


@st.composite
def arrays(draw, arena: np.ndarray, made: List[np.ndarray], shape, dtype, rng: np.random.Generator,
           mode: str = "faults"):
    """One array for a slot: fresh, carved out of the arena at any byte offset, an alias of one made
    before, or (mode "faults") something wrong: another dtype, shape, strides, read-only, not an array."""
    if mode == "clean":
        where = "fresh"
    elif made:
        where = draw(st.sampled_from(["fresh", "fresh", "arena", "arena", "alias"]))
    else:
        where = draw(st.sampled_from(["fresh", "arena"]))
    fault = draw(st.sampled_from([None] * 12 + ["dtype", "shape", "strided", "readonly", "list"])) if mode == "faults" \
        else None
    if fault == "dtype":  # never a 16-bit float: those are valid storage (tests/test_mixed_precision.py)
        dtype = draw(st.sampled_from([np.uint16, np.int32, np.int64, np.dtype(">f8"), np.complex64,
                                      np.float32 if dtype == np.float64 else np.float64]))
    if fault == "shape":
        shape = tuple(shape) + (2,)
    dtype = np.dtype(dtype)
    size = int(np.prod(shape))
    if fault == "list":
        return [0.0] * size
    if where == "alias":
        a = draw(st.sampled_from(made))
    elif fault == "strided":
        a = rng.uniform(-2, 2, size=(2 * size,)).astype(dtype)[::2].reshape(shape) if size > 1 else \
            rng.uniform(-2, 2, size=(3, 2)).astype(dtype).T
    elif where == "fresh":
        a = rng.uniform(-2, 2, size=shape).astype(dtype)
    else:
        nbytes = size * dtype.itemsize
        offset = draw(st.integers(0, ARENA_BYTES - nbytes))
        if mode != "faults" or draw(st.integers(0, 3)):
            offset -= offset % dtype.itemsize  # misaligned only among the faults
        a = arena[offset:offset + nbytes].view(dtype).reshape(shape)
    if fault == "readonly":
        a = a.view()
        a.flags.writeable = False
    made.append(a)
    return a


def extent(a: np.ndarray):
    begin = a.__array_interface__["data"][0]
    return begin, begin + a.nbytes


def invalid(lists: List[list], writable: List[bool], one_dtype: bool = True) -> Optional[str]:
    """Why these lists are not a valid step (None when they are): DESIGN.md §5 and the overlap rule.
    ``one_dtype=False``: an optimizer's lists, where each param brings its own dtype."""
    params = lists[0]
    if not params:
        return "no params"
    if any(len(lst) != len(params) for lst in lists):
        return "lengths"
    placed = []
    for k, lst in enumerate(lists):
        for i, a in enumerate(lst):
            p = params[0] if one_dtype else params[i]
            if not isinstance(p, np.ndarray) or p.dtype not in FLOATS:
                return f"{0 if one_dtype else i} params dtype"
            if not isinstance(a, np.ndarray) or a.dtype != p.dtype:
                return f"{k},{i} dtype"
            if not a.flags.c_contiguous or not a.flags.aligned:
                return f"{k},{i} layout"
            if writable[k] and not a.flags.writeable:
                return f"{k},{i} read-only"
            if a.shape != params[i].shape:
                return f"{k},{i} shape"
            placed.append((k, i, *extent(a)))
    for x, (k1, i1, b1, e1) in enumerate(placed):
        for k2, i2, b2, e2 in placed[x + 1:]:
            if b1 < e2 and b2 < e1:
                own_grad = {k1, k2} == {0, 1} and i1 == i2 and (b1, e1) == (b2, e2)
                if not own_grad:
                    return f"{k1},{i1} and {k2},{i2} overlap"
    return None


def snapshot(things):
    return [a.tobytes() if isinstance(a, np.ndarray) else list(a) for a in things]


def unchanged(things, before):
    return all((a.tobytes() if isinstance(a, np.ndarray) else list(a)) == b for a, b in zip(things, before))


def names_an_argument(error: Exception, names) -> bool:
    text = str(error)
    return any(text.startswith(n) for n in names)


def goes_through_or_fails_cleanly(call, reason: Optional[str], argument_names, everything, before) -> bool:
    """Runs ``call``. An invalid call (``reason``) must raise TypeError/ValueError naming an argument
    with not one byte changed; a valid one must go through. Returns whether it went through."""
    try:
        call()
    except (TypeError, ValueError) as e:
        assert reason is not None, f"refused a valid call: {e}"
        assert names_an_argument(e, argument_names), str(e)
        assert unchanged(everything, before), f"{e}: bytes changed"
        return False
    assert reason is None, f"accepted an invalid call ({reason})"
    return True


@st.composite
def hyperparameters(draw, spec):
    """Accepted values from each check's strategy; sometimes one refused value (and its error)."""
    h = {name: draw(hyper.check.strategy(st)) for name, hyper in ((x.name, x) for x in spec.hypers) if hyper.kernel}
    bad = None
    if draw(st.integers(0, 14)) == 0:
        hyper = draw(st.sampled_from([x for x in spec.hypers if x.kernel]))
        bad_values = hyper.check.bad_values()
        if bad_values:
            h[hyper.name] = draw(st.sampled_from(bad_values))[0]
            bad = hyper.name
    try:
        spec.check(h)
    except (TypeError, ValueError):
        bad = bad or "constraint"
    return h, bad


def reference_step(spec, h, step, params, grads, buffers_in_use, lists):
    """The reference's params and buffers after one step, in float64, from copies of the inputs."""
    out_params, out_buffers = [], {b.argument: [] for b in buffers_in_use}
    for i, (p, g) in enumerate(zip(params, grads)):
        state = {"step": step - 1}
        for b in buffers_in_use:
            if not (spec.new_buffer_is_first_step and step == 1):  # SGD's buffer starts at g on step 1
                state[b.key] = lists[b.argument][i].astype(np.float64)
        p64 = p.astype(np.float64)
        with np.errstate(all="ignore"):  # random "second moments" may be negative: NaN, as in the kernels
            REFERENCE[spec.class_name](p64, g.astype(np.float64), state, **h)
        out_params.append(p64)
        for b in buffers_in_use:
            out_buffers[b.argument].append(state[b.key])
    return out_params, out_buffers


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), spec=st.sampled_from(SPECS), seed=st.integers(0, 2**32 - 1))
def test_functional_steps_give_the_reference_answer_or_a_clean_error(data, spec, seed):
    rng = np.random.default_rng(seed)
    dtype = data.draw(st.sampled_from([np.float32, np.float64]))
    arena = new_arena(seed, dtype)
    mode = data.draw(st.sampled_from(MODES))
    n = data.draw(st.sampled_from([1, 1, 2, 2, 3, 0] if mode == "faults" else [1, 2, 3]))
    shapes = [data.draw(st.sampled_from([(), (0,), (1,), (3,), (2, 3), (7,), (4, 0)])) for _ in range(n)]
    if mode == "arena":  # one shape, so that aliases and carved arrays meet as overlaps, not shape errors
        shapes = [shapes[0]] * n
    h, bad_hyper = data.draw(hyperparameters(spec))
    step = data.draw(st.sampled_from([1, 2, 3, 4, 1, 2, 3, 4, 2**63, 0, -1, 1.0, True]))
    bad_step = not (type(step) is int and step >= 1)
    variant = spec.variant({**spec.defaults, **h}, 1) if bad_hyper is None and not bad_step else 0
    in_use = spec.buffers_in(variant)
    made: List[np.ndarray] = []
    lists = {"params": [data.draw(arrays(arena, made, s, dtype, rng, mode)) for s in shapes],
             "grads": [data.draw(arrays(arena, made, s, dtype, rng, mode)) for s in shapes]}
    for b in spec.buffers:
        lists[b.argument] = [data.draw(arrays(arena, made, s, dtype, rng, mode)) for s in shapes]
    if mode == "faults" and n and data.draw(st.integers(0, 5)) == 0:
        lists["grads"] = lists["grads"][:-1]  # one list shorter
    ordered = [lists["params"], lists["grads"]] + [lists[b.argument] for b in in_use]
    reason = invalid(ordered, [True, False] + [True] * len(in_use))
    if reason is None and bad_hyper is not None:
        reason = f"hyperparameter {bad_hyper}"
    if reason is None and bad_step:
        reason = "step"
    if reason is None:  # distinct arrays: each can be set on its own
        make_states_realistic(spec, lists, in_use)
    everything = [arena] + [a for lst in lists.values() for a in lst]
    before = snapshot(everything)
    expected = None
    if reason is None:
        expected = reference_step(spec, h, step, lists["params"], lists["grads"], in_use, lists)
    event("valid" if reason is None else reason.split()[-1])
    fn = getattr(F, spec.name)
    buffers = {b.argument: lists[b.argument] for b in spec.buffers}
    if not goes_through_or_fails_cleanly(lambda: fn(lists["params"], lists["grads"], step=step, **buffers, **h),
                                         reason, ["params", "grads", "step", *buffers, *h], everything, before):
        return
    ref_params, ref_buffers = expected
    tol = TOLERANCE[np.dtype(dtype)]
    for i, p in enumerate(lists["params"]):
        np.testing.assert_allclose(p, ref_params[i], **tol, err_msg=f"params[{i}]")
        for b in in_use:
            np.testing.assert_allclose(lists[b.argument][i], ref_buffers[b.argument][i], **tol,
                                       err_msg=f"{b.argument}[{i}]")
    written = [extent(a) for k in ["params"] + [b.argument for b in in_use] for a in lists[k]]
    arena_begin = arena.__array_interface__["data"][0]
    untouched = np.ones(ARENA_BYTES, bool)
    for b, e in written:
        if arena_begin <= b < arena_begin + ARENA_BYTES:
            untouched[b - arena_begin:e - arena_begin] = False
    assert (arena[untouched] == np.frombuffer(before[0], np.uint8)[untouched]).all(), "wrote outside its arrays"


@settings(max_examples=EXAMPLES // 2, deadline=None)
@given(data=st.data(), seed=st.integers(0, 2**32 - 1))
def test_optimizer_plans_give_the_reference_answer_or_a_clean_error(data, seed):
    """An Adam over params carved from the arena: refused at construction when two share memory;
    then steps whose grads may overlap the params, the state or each other."""
    rng = np.random.default_rng(seed)
    arena = new_arena(seed)
    n = data.draw(st.integers(1, 3))
    shapes = [data.draw(st.sampled_from([(1,), (3,), (2, 3), (7,)])) for _ in range(n)]
    made: List[np.ndarray] = []
    mode = data.draw(st.sampled_from(MODES))
    params = [data.draw(arrays(arena, made, s, np.float64, rng, mode)) for s in shapes]
    reason = invalid([params], [True], one_dtype=False)
    before = snapshot([arena] + params)
    event("valid params" if reason is None else "invalid params")
    try:
        opt = fusedopt.Adam(params, lr=0.1, weight_decay=0.01)
    except (TypeError, ValueError) as e:
        assert reason is not None, f"refused valid params: {e}"
        assert str(e).startswith("param_groups[0]['params']["), str(e)
        assert unchanged([arena] + params, before)
        return
    assert reason is None, f"accepted invalid params ({reason})"
    states = [{} for _ in params]
    for _ in range(3):
        grads = [data.draw(arrays(arena, made, s, np.float64, rng, data.draw(st.sampled_from(MODES))))
                 for s in shapes]
        buffers = [[opt.state[i][k] for i in range(n)] for k in ("exp_avg", "exp_avg_sq")] if opt.state else []
        reason = invalid([params, grads] + buffers, [True, False, True, True], one_dtype=False)
        event("valid step" if reason is None else "invalid step")
        before = snapshot([arena] + params + grads + [b for lst in buffers for b in lst])
        expected = [p.copy() for p in params]
        saved_states = [{k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in s.items()} for s in states]
        if reason is None:
            for p, g, s in zip(expected, grads, states):
                REFERENCE["Adam"](p, g.copy(), s, lr=0.1, weight_decay=0.01)
        try:
            opt.step(grads)
        except (TypeError, ValueError) as e:
            assert reason is not None, f"refused a valid step: {e}"
            assert unchanged([arena] + params + grads + [b for lst in buffers for b in lst], before), str(e)
            states = saved_states
            continue
        assert reason is None, f"accepted an invalid step ({reason})"
        for p, e in zip(params, expected):
            np.testing.assert_allclose(p, e, **TOLERANCE[p.dtype])


@settings(max_examples=EXAMPLES // 2, deadline=None)
@given(data=st.data(), seed=st.integers(0, 2**32 - 1))
def test_fills_write_their_array_or_refuse_cleanly(data, seed):
    rng = np.random.default_rng(seed)
    arena = new_arena(seed)
    dtype = data.draw(st.sampled_from([np.float32, np.float64, np.float16]))
    shape = data.draw(st.sampled_from([(1,), (5,), (3, 4), (17,)]))
    target = data.draw(arrays(arena, [], shape, dtype, rng, data.draw(st.sampled_from(["arena", "faults"]))))
    ok = (isinstance(target, np.ndarray) and target.dtype in (np.float16, np.float32, np.float64)
          and target.dtype.isnative and target.flags.c_contiguous and target.flags.aligned and target.flags.writeable)
    event("valid target" if ok else "invalid target")
    before = snapshot([arena])
    outside = np.ones(ARENA_BYTES, bool)
    if isinstance(target, np.ndarray):
        b, e = extent(target)
        base = arena.__array_interface__["data"][0]
        if base <= b < base + ARENA_BYTES:
            outside[b - base:e - base] = False
    try:
        fusedopt.init.uniform_(target, a=-0.5, b=0.5, seed=seed)
    except (TypeError, ValueError) as e:
        assert not ok, f"refused a valid target: {e}"
        assert str(e).startswith("tensor"), str(e)
        assert unchanged([arena], before)
        return
    assert ok, "filled an invalid target"
    values = target.astype(np.float64)
    assert ((values >= -0.5) & (values < 0.5)).all()
    assert (arena[outside] == np.frombuffer(before[0], np.uint8)[outside]).all(), "wrote outside the target"


ADAFACTOR_STATE = (("row_vars", "row_var"), ("col_vars", "col_var"), ("variances", "variance"))


def adafactor_invalid(lists, shapes) -> Optional[str]:
    """Why Adafactor's lists are not a valid step (None when they are): the params' and grads' rules,
    each state entry present exactly where the param's dims want it (fusedopt.functional.adafactor)
    with that shape, and no two arrays sharing memory but a grad that is its own param."""
    params = lists["params"]
    if not params:
        return "no params"
    if any(len(lst) != len(params) for lst in lists.values()):
        return "lengths"
    spec = F.adafactor.spec
    placed = []
    for k, (name, lst) in enumerate(lists.items()):
        for i, a in enumerate(lst):
            expected = shapes[i] if name in ("params", "grads") else spec.buffer_shape(
                dict(ADAFACTOR_STATE)[name], shapes[i])
            if expected is None:
                if a is not None:
                    return f"{name},{i} present"
                continue
            if a is None:
                return f"{name},{i} missing"
            if not isinstance(params[0], np.ndarray) or params[0].dtype not in FLOATS:
                return "params dtype"
            if not isinstance(a, np.ndarray) or a.dtype != params[0].dtype:
                return f"{name},{i} dtype"
            if not a.flags.c_contiguous or not a.flags.aligned:
                return f"{name},{i} layout"
            if name != "grads" and not a.flags.writeable:
                return f"{name},{i} read-only"
            if a.shape != tuple(expected):
                return f"{name},{i} shape"
            placed.append((k, i, *extent(a)))
    for x, (k1, i1, b1, e1) in enumerate(placed):
        for k2, i2, b2, e2 in placed[x + 1:]:
            if b1 < e2 and b2 < e1 and not ({k1, k2} == {0, 1} and i1 == i2 and (b1, e1) == (b2, e2)):
                return f"{k1},{i1} and {k2},{i2} overlap"
    return None


@settings(max_examples=EXAMPLES // 2, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), seed=st.integers(0, 2**32 - 1))
def test_adafactor_gives_the_reference_answer_or_a_clean_error(data, seed):
    """Adafactor's own binding (its state shaped by each param's dims): the same rules as above, and a
    state entry given where the param has none, or missing where it has one, is refused too."""
    from fusedopt import reference

    spec = F.adafactor.spec
    rng = np.random.default_rng(seed)
    dtype = data.draw(st.sampled_from([np.float32, np.float64]))
    arena = new_arena(seed, dtype)
    mode = data.draw(st.sampled_from(MODES))
    n = data.draw(st.sampled_from([1, 1, 2, 2, 3, 0] if mode == "faults" else [1, 2, 3]))
    shapes = [data.draw(st.sampled_from([(), (1,), (3,), (2, 3), (3, 1), (1, 4), (2, 2, 3), (4, 0)]))
              for _ in range(n)]
    h, bad_hyper = data.draw(hyperparameters(spec))
    step = data.draw(st.sampled_from([1, 2, 3, 4, 1, 2, 3, 4, 2**63, 0, -1, 1.0, True]))
    made: List[np.ndarray] = []
    lists = {"params": [data.draw(arrays(arena, made, s, dtype, rng, mode)) for s in shapes],
             "grads": [data.draw(arrays(arena, made, s, dtype, rng, mode)) for s in shapes]}
    for argument, key in ADAFACTOR_STATE:
        lists[argument] = []
        for s in shapes:
            expected = spec.buffer_shape(key, s)
            flip = mode == "faults" and data.draw(st.integers(0, 9)) == 0  # present where absent, or the reverse
            if (expected is None) != flip:
                lists[argument].append(None)
            else:
                lists[argument].append(data.draw(arrays(arena, made, expected or s, dtype, rng, mode)))
    if mode == "faults" and n and data.draw(st.integers(0, 5)) == 0:
        lists["col_vars"] = lists["col_vars"][:-1]  # one list shorter
    reason = adafactor_invalid(lists, shapes)
    reason = reason or (f"hyperparameter {bad_hyper}" if bad_hyper else None)
    reason = reason or (None if type(step) is int and step >= 1 else "step")
    if reason is None:  # second moments >= 0.1, as above
        for argument, _ in ADAFACTOR_STATE:
            for a in lists[argument]:
                if a is not None:
                    a[...] = np.abs(a) + 0.1
    everything = [arena] + [a for lst in lists.values() for a in lst if a is not None]
    before = snapshot(everything)
    expected_params, expected_state = [], []
    if reason is None:
        for i, (p, g) in enumerate(zip(lists["params"], lists["grads"])):
            state = {"step": step - 1}
            state.update({key: lists[arg][i].astype(np.float64) for arg, key in ADAFACTOR_STATE
                          if lists[arg][i] is not None})
            p64 = p.astype(np.float64)
            reference.adafactor(p64, g.astype(np.float64), state, eps1_dtype=dtype, **h)
            expected_params.append(p64)
            expected_state.append(state)
    event("valid" if reason is None else reason.split()[-1])
    call = lambda: F.adafactor(lists["params"], lists["grads"], lists["row_vars"], lists["col_vars"],  # noqa: E731
                               lists["variances"], step=step, **h)
    if not goes_through_or_fails_cleanly(call, reason, ["params", "grads", "step", *lists, *h], everything, before):
        return
    tol = TOLERANCE[np.dtype(dtype)]
    for i, p in enumerate(lists["params"]):
        np.testing.assert_allclose(p, expected_params[i], **tol, err_msg=f"params[{i}]")
        for argument, key in ADAFACTOR_STATE:
            if lists[argument][i] is not None:
                np.testing.assert_allclose(lists[argument][i], expected_state[i][key], **tol,
                                           err_msg=f"{argument}[{i}]")


# --- mixed precision: random storage per list, master copies, stochastic rounding, overlaps ---------

ml_dtypes = pytest.importorskip("ml_dtypes")
STORAGE = {"float32": np.dtype(np.float32), "bfloat16": np.dtype(ml_dtypes.bfloat16), "float16": np.dtype(np.float16)}
MIXED_SPECS = [s for s in SPECS if s.name in ("adam", "sgd", "lamb", "rmsprop", "lion", "adagrad")]


@settings(max_examples=EXAMPLES // 3, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), seed=st.integers(0, 2**32 - 1))
def test_mixed_storage_steps_give_the_reference_answer_or_a_clean_error(data, seed):
    """A step over lists each stored in its own type (float32, bfloat16, float16), with or without
    float32 master copies and stochastic rounding, sizes around the 16-element vectors and the 256-element
    blocks: the reference's (within StepCheck's bound), or, when asked for something refused (a master copy
    of float32 params, stochastic rounding of a float16 list, a written array sharing memory with another),
    a ValueError/TypeError with nothing written."""
    from fusedopt import reference
    from fusedopt.functional._spec import run
    from test_mixed_precision import StepCheck, largest_terms

    rng = np.random.default_rng(seed)
    spec = data.draw(st.sampled_from(MIXED_SPECS))
    h = {**spec.defaults, "lr": 0.01}
    step = data.draw(st.integers(2, 4))  # the buffers given are the state (no first-step rule)
    variant = spec.variant(h, step)
    buffers = spec.buffers_in(variant)
    sizes = data.draw(st.lists(st.sampled_from([0, 1, 15, 16, 17, 255, 256, 257, 1000]), min_size=1, max_size=3))
    kinds = [data.draw(st.sampled_from(list(STORAGE))) for _ in range(2 + len(buffers))]
    params = [rng.standard_normal(n).astype(STORAGE[kinds[0]]) for n in sizes]
    grads = [rng.standard_normal(n).astype(STORAGE[kinds[1]]) for n in sizes]
    lists = {b.argument: [np.abs(rng.standard_normal(n)).astype(STORAGE[k]) for n in sizes]
             for b, k in zip(buffers, kinds[2:])}
    master = [p.astype(np.float32) for p in params] if data.draw(st.booleans()) else None
    seed_or_none = data.draw(st.sampled_from([None, 7, 2**64 - 1]))
    alias = data.draw(st.sampled_from([None, "state aliases param", "master aliases grad"]))
    if alias == "state aliases param" and buffers and kinds[2] == kinds[0] and sizes[0] > 0:
        lists[buffers[0].argument][0] = params[0]
    elif alias == "master aliases grad" and master is not None and kinds[1] == "float32" and sizes[0] > 0:
        master[0] = grads[0]
    else:
        alias = None
    written = params + [a for lst in lists.values() for a in lst] + (master or [])
    refused = (master is not None and kinds[0] == "float32") or alias is not None or (
        seed_or_none is not None and "float16" in [kinds[0]] + kinds[2:])
    event("refused" if refused else "valid")
    expected = []
    if not refused:
        for i, (p, g) in enumerate(zip(params, grads)):
            state = {"step": step - 1}
            for b in buffers:
                state[b.key] = lists[b.argument][i].copy()
            p_ref, m_ref = p.copy(), None if master is None else master[i].copy()
            # the values before the step are terms of it too: x − lr·g cancels when the two are close
            before_terms = largest_terms(p, *([] if m_ref is None else [m_ref]))
            reference.mixed_step(REFERENCE[spec.class_name], p_ref, g, state, master=m_ref, tensor_id=i, rounding_seed=seed_or_none,
                                 state_keys=[b.key for b in spec.buffers],
                                 state_dtype=kinds[2] if buffers else None,
                                 **{k: v for k, v in h.items() if k in spec.kernel_hypers})
            expected.append((p_ref, state, m_ref, before_terms))
    before = snapshot(written + grads)
    try:
        run(spec, params, grads, {**{b.argument: None for b in spec.buffers}, **lists}, step, h,
            master_params=master, rounding_seed=seed_or_none)
    except (TypeError, ValueError) as e:
        assert refused, f"refused a valid step: {e}"
        assert unchanged(written + grads, before), str(e)
        return
    assert not refused, "accepted an invalid step"
    check = StepCheck(0.01)
    for i, (p_ref, state, m_ref, before_terms) in enumerate(expected):
        terms = largest_terms(before_terms, p_ref, *[v for k, v in state.items() if k != "step"])
        check.close(params[i], p_ref, terms, f"params[{i}]")
        for b in buffers:
            if b.key in state:
                check.close(lists[b.argument][i], state[b.key], terms, f"{b.argument}[{i}]")
        if m_ref is not None:
            check.close(master[i], m_ref, terms, f"master_params[{i}]")
    check.done("step")
