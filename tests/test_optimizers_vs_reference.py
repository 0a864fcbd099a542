"""Every optimizer × option × dtype × size against the float64 NumPy reference, over 20 steps with
an lr that changes mid-run (set through param_groups, as a schedule would).

Tolerances. float64: the kernels and the reference compute the same formula in float64; they differ
only in rounding order (explicit FMA, scalars folded on the host), a few ulps per operation, which
stays below 1e-10 relative after 20 steps. float32: the kernels compute and keep state in float32
(unit roundoff 6e-8); about ten roundings per element per step over 20 steps bound the relative
error of the state near 2e-5, and a param moves by about lr per step, so its error stays well
under 2e-5 relative plus 2e-6 absolute (params and gradients are of order 1). Buffers that sum
terms of both signs (momentum) lose relative accuracy where the sum cancels, so the absolute part
scales with the largest magnitude in the array: the error is relative to the terms, not the sum.
"""

import numpy as np
import pytest

from cases import CASES, ReferenceRun, case_id, make_optimizer, random_grads, random_params

TOLERANCE = {np.float32: dict(rtol=2e-5, atol=2e-6), np.float64: dict(rtol=1e-10, atol=1e-12)}


def assert_close(actual, desired, dtype, what):
    tol = TOLERANCE[dtype]
    scale = max(1.0, float(np.nanmax(np.abs(desired), initial=0.0, where=np.isfinite(desired))))
    np.testing.assert_allclose(actual, desired, rtol=tol["rtol"], atol=tol["atol"] * scale, err_msg=what)
STEPS = 20


def _list_of_50_shapes():
    rng = np.random.default_rng(50)
    shapes = [(0,), (1,), (7,), (1023,), (3, 0, 2)]
    while len(shapes) < 50:
        ndim = int(rng.integers(1, 4))
        shapes.append(tuple(int(d) for d in rng.integers(1, 24, size=ndim)))
    shapes[10] = (300, 129)  # makes the list large enough for the threaded path
    return shapes


LAYOUTS = {
    "size0": [(0,)],
    "size1": [(1,)],
    "size7": [(7,)],
    "size1023": [(1023,)],
    "size2000003": [(2_000_003,)],
    "list50": _list_of_50_shapes(),
}


def run_both(name, kwargs, shapes, dtype, seed=0, steps=STEPS):
    params = random_params(shapes, dtype, seed)
    ref = ReferenceRun(name, params, kwargs)
    opt = make_optimizer(name, params, kwargs)
    rng = np.random.default_rng(seed + 1)
    for t in range(steps):
        if t == steps // 2:  # a schedule changes lr mid-run
            for group in opt.param_groups:
                group["lr"] *= 0.3
            ref.kwargs["lr"] = opt.param_groups[0]["lr"]
        grads = random_grads(shapes, dtype, rng)
        opt.step(grads)
        ref.step(grads)
    return opt, ref, params


# Optimizers whose step is ±lr·sign(c): where c is within float32 rounding of 0, float32 and the float64
# reference may take opposite signs, and that param then differs by 2·lr for good (c does not depend
# on p, so the rest of the trajectory is the same). Such elements must be rare (at most 1 in 1e5, and
# never more than one flip each); the state is still compared in full.
SIGN_STEPS = {"Lion"}


def _without_sign_flips(p, p_ref, lr):
    flipped = ~np.isclose(p, p_ref, rtol=TOLERANCE[np.float32]["rtol"], atol=TOLERANCE[np.float32]["atol"])
    assert flipped.sum() <= max(1, 1e-5 * p.size), f"{flipped.sum()} of {p.size} elements differ"
    assert np.all(np.abs(p[flipped] - p_ref[flipped]) <= 2.1 * lr), "a difference larger than one sign flip"
    return p[~flipped], p_ref[~flipped]


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("case", CASES, ids=[case_id(c) for c in CASES])
def test_trajectory_matches_reference(case, dtype, layout):
    name, kwargs = case
    opt, ref, params = run_both(name, kwargs, LAYOUTS[layout], dtype)
    for i, (p, p_ref) in enumerate(zip(params, ref.params)):
        assert p.dtype == dtype
        if name in SIGN_STEPS and dtype == np.float32:
            p, p_ref = _without_sign_flips(p, p_ref, kwargs.get("lr", 1e-4))
        assert_close(p, p_ref, dtype, f"params[{i}]")
        for key, buf_ref in ref.states[i].items():
            if key == "step":
                assert opt.state[i]["step"] == buf_ref
            else:
                assert_close(opt.state[i][key], buf_ref, dtype, f"state[{i}][{key!r}]")


@pytest.mark.parametrize("case", CASES, ids=[case_id(c) for c in CASES])
def test_nan_gradient_propagates_like_reference(case):
    name, kwargs = case
    shapes = [(33,)]
    params = random_params(shapes, np.float64, 3)
    ref = ReferenceRun(name, params, kwargs)
    opt = make_optimizer(name, params, kwargs)
    rng = np.random.default_rng(4)
    for t in range(3):
        grads = random_grads(shapes, np.float64, rng)
        if t == 1:
            grads[0][5] = np.nan
            grads[0][9] = np.inf
        opt.step(grads)
        with np.errstate(invalid="ignore", over="ignore"):  # inf/inf in the reference, as in the kernel
            ref.step(grads)
    np.testing.assert_allclose(params[0], ref.params[0], rtol=1e-10, atol=1e-12)  # NaNs at the same places
    # A step of ±sign(·) takes torch.sign, which is 0 for NaN: the NaN element does not move.
    assert np.isnan(params[0][5]) != (name in ("Rprop", "Lion"))
    assert np.array_equal(np.isfinite(params[0]), np.isfinite(ref.params[0]))


def test_param_groups_have_their_own_hyperparameters():
    shapes = [(40,), (17,), (5, 3)]
    params = random_params(shapes, np.float64, 7)
    refs = [ReferenceRun("Adam", params[:2], dict(lr=0.01)), ReferenceRun("Adam", params[2:], dict(lr=0.1, amsgrad=True))]
    opt = __import__("fusedopt").Adam([{"params": params[:2]}, {"params": params[2:], "lr": 0.1, "amsgrad": True}],
                                      lr=0.01)
    rng = np.random.default_rng(8)
    for _ in range(5):
        grads = random_grads(shapes, np.float64, rng)
        opt.step(grads)
        refs[0].step(grads[:2])
        refs[1].step(grads[2:])
    for p, p_ref in zip(params, refs[0].params + refs[1].params):
        np.testing.assert_allclose(p, p_ref, rtol=1e-10, atol=1e-12)


def test_none_gradient_skips_the_param_and_its_step_count():
    shapes = [(9,), (4,)]
    params = random_params(shapes, np.float64, 11)
    refs = [ReferenceRun("Adam", [params[0]], {}), ReferenceRun("Adam", [params[1]], {})]
    opt = __import__("fusedopt").Adam(params)
    rng = np.random.default_rng(12)
    for t in range(6):
        grads = random_grads(shapes, np.float64, rng)
        if t % 2 == 0:  # params[1] gets a gradient only every other step: its own step count
            grads[1] = None
        opt.step(grads)
        refs[0].step([grads[0]])
        if grads[1] is not None:
            refs[1].step([grads[1]])
    assert opt.state[0]["step"] == 6 and opt.state[1]["step"] == 3
    np.testing.assert_allclose(params[0], refs[0].params[0], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(params[1], refs[1].params[0], rtol=1e-10, atol=1e-12)


def test_float32_and_float64_params_in_one_group_each_follow_the_reference():
    """One group mixing dtypes: split by dtype inside (as torch's fused path does), each its own call."""
    import fusedopt

    rng = np.random.default_rng(21)
    params = [rng.standard_normal(17).astype(np.float32), rng.standard_normal(9), rng.standard_normal((5, 3)).astype(np.float32)]
    refs = [ReferenceRun("Adam", [p], dict(lr=0.01, amsgrad=True)) for p in params]
    opt = fusedopt.Adam(params, lr=0.01, amsgrad=True)
    for _ in range(6):
        grads = [rng.standard_normal(p.shape).astype(p.dtype) for p in params]
        opt.step(grads)
        for ref, g in zip(refs, grads):
            ref.step([g])
    for i, (p, ref) in enumerate(zip(params, refs)):
        assert p.dtype == (np.float64 if i == 1 else np.float32)
        assert_close(p, ref.params[0], p.dtype.type, f"params[{i}]")
        assert opt.state[i]["max_exp_avg_sq"].dtype == p.dtype


def test_a_state_buffer_replaced_by_the_user_is_the_one_updated_next():
    """The prepared plan holds the state arrays; writing a new one into ``state`` is seen at the next step."""
    import fusedopt

    rng = np.random.default_rng(22)
    params = [rng.standard_normal(11)]
    ref = ReferenceRun("Adam", params, dict(lr=0.01))
    opt = fusedopt.Adam(params, lr=0.01)
    for t in range(4):
        if t == 2:
            opt.state[0]["exp_avg"] = np.zeros(11)
            ref.states[0]["exp_avg"] = np.zeros(11)
        grads = [rng.standard_normal(11)]
        opt.step(grads)
        ref.step(grads)
    np.testing.assert_allclose(params[0], ref.params[0], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(opt.state[0]["exp_avg"], ref.states[0]["exp_avg"], rtol=1e-10, atol=1e-12)


def test_a_param_whose_state_is_deleted_starts_afresh_like_a_new_param():
    import fusedopt

    rng = np.random.default_rng(23)
    params = [rng.standard_normal(6), rng.standard_normal(4)]
    refs = [ReferenceRun("Adam", [p], dict(lr=0.01)) for p in params]
    opt = fusedopt.Adam(params, lr=0.01)
    for t in range(5):
        if t == 3:
            del opt.state[1]
            refs[1].states[0] = {}
        grads = [rng.standard_normal(p.shape) for p in params]
        opt.step(grads)
        for ref, g in zip(refs, grads):
            ref.step([g])
    assert opt.state[0]["step"] == 5 and opt.state[1]["step"] == 2
    for p, ref in zip(params, refs):
        np.testing.assert_allclose(p, ref.params[0], rtol=1e-10, atol=1e-12)


DERIVED_STATE_CASES = [c for c in CASES if c[0] in ("NAdam", "ASGD")]


@pytest.mark.parametrize("case", DERIVED_STATE_CASES, ids=[case_id(c) for c in DERIVED_STATE_CASES])
def test_derived_scalar_state_matches_torch_optim(case):
    """fusedopt.NAdam and ASGD derive torch's per-param scalar state (mu_product; eta and mu) from the
    step count (fusedopt.torch has no class for them yet, so this is their check against torch.optim):
    20 float64 steps with torch's default dtype float64, where torch keeps that state in float64 too."""
    torch = pytest.importorskip("torch")
    name, kwargs = case
    shapes = [(7,), (3, 5)]
    params = random_params(shapes, np.float64, 11)
    opt = make_optimizer(name, params, kwargs)
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        tensors = [torch.tensor(p.copy(), requires_grad=True) for p in params]
        theirs = getattr(torch.optim, name)(tensors, **kwargs)
        rng = np.random.default_rng(12)
        for _ in range(20):
            grads = random_grads(shapes, np.float64, rng)
            opt.step(grads)
            for t, g in zip(tensors, grads):
                t.grad = torch.tensor(g)
            theirs.step()
    finally:
        torch.set_default_dtype(default)
    for p, t in zip(params, tensors):
        np.testing.assert_allclose(p, t.detach().numpy(), rtol=1e-10, atol=1e-12)
