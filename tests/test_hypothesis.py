"""Random shapes, lists and hyperparameters against the reference (float64, a few steps)."""

import numpy as np
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from cases import ReferenceRun, make_optimizer
from fusedopt.functional import SPECS

shapes = st.lists(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=9), min_size=1, max_size=5)


@st.composite
def cases(draw):
    """An optimizer and hyperparameters drawn from its spec: each check's strategy of accepted values;
    draws the spec's constraints refuse (SGD's nesterov without momentum) are rejected."""
    spec = draw(st.sampled_from(SPECS))
    kw = {h.name: draw(h.check.strategy(st)) for h in spec.hypers}
    try:
        spec.check(kw)
    except ValueError:
        assume(False)
    return spec.class_name, kw


@settings(max_examples=150, deadline=None)
@given(case=cases(), shape_list=shapes, seed=st.integers(0, 2**31 - 1))
def test_random_cases_match_reference(case, shape_list, seed):
    name, kwargs = case
    rng = np.random.default_rng(seed)
    params = [rng.standard_normal(s) for s in shape_list]
    ref = ReferenceRun(name, params, kwargs)
    opt = make_optimizer(name, params, kwargs)
    for _ in range(4):
        grads = [rng.standard_normal(s) for s in shape_list]
        opt.step(grads)
        ref.step(grads)
    for p, p_ref in zip(params, ref.params):
        np.testing.assert_allclose(p, p_ref, rtol=1e-9, atol=1e-11)
