"""Random shapes, lists and hyperparameters against the reference (float64, a few steps)."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from cases import ReferenceRun, make_optimizer

shapes = st.lists(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=9), min_size=1, max_size=5)
rate = st.floats(0.0, 0.5)
unit = st.floats(0.0, 0.999)


@st.composite
def cases(draw):
    name = draw(st.sampled_from(["SGD", "Adagrad", "RMSprop", "Adam", "AdamW"]))
    kw = dict(lr=draw(rate), weight_decay=draw(st.floats(0.0, 0.2)), maximize=draw(st.booleans()))
    if name == "SGD":
        kw["momentum"] = draw(st.sampled_from([0.0, 0.5, 0.9]))
        kw["nesterov"] = kw["momentum"] > 0 and draw(st.booleans())
        kw["dampening"] = 0.0 if kw["nesterov"] else draw(st.floats(0.0, 1.0))
    elif name == "Adagrad":
        kw.update(lr_decay=draw(st.floats(0.0, 0.5)), initial_accumulator_value=draw(st.floats(0.0, 1.0)),
                  eps=draw(st.floats(1e-10, 1e-3)))
    elif name == "RMSprop":
        # centered: ṽ = v − a² cancels like 1/α at the first step (ṽ = α(1−α)g²), so α is kept away
        # from 0, where the problem itself is ill-conditioned and no two roundings agree
        kw.update(alpha=draw(st.floats(0.1, 0.999)), momentum=draw(st.floats(0.0, 0.9)), centered=draw(st.booleans()),
                  eps=draw(st.floats(1e-8, 1e-3)))
    else:
        kw.update(betas=(draw(unit), draw(unit)), amsgrad=draw(st.booleans()), eps=draw(st.floats(1e-8, 1e-3)))
    return name, kw


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
