"""fusedopt.jax: optax-style transformations over pytrees, against optax where the algorithms are the
same (adam, adamw, sgd with momentum/Nesterov) and against fusedopt.reference for all of them."""

import numpy as np
import pytest

jax = pytest.importorskip("jax")
optax = pytest.importorskip("optax")
import jax.numpy as jnp  # noqa: E402

import fusedopt.jax as fj  # noqa: E402
from fusedopt import reference  # noqa: E402

TOL = dict(rtol=2e-5, atol=2e-6)  # float32 (JAX's default precision)


def pytree(seed=0):
    rng = np.random.default_rng(seed)
    return {"w": jnp.asarray(rng.standard_normal((4, 3)), jnp.float32),
            "layers": [jnp.asarray(rng.standard_normal(5), jnp.float32), jnp.asarray(rng.standard_normal(()), jnp.float32)]}


def grads_for(params, seed):
    rng = np.random.default_rng(seed)
    return jax.tree_util.tree_map(lambda p: jnp.asarray(rng.standard_normal(p.shape), p.dtype), params)


def trajectory(tx, steps=8, seed=0, jit=False):
    """params after `steps` steps; jit: each whole step (update, apply_updates) one jitted computation
    with the params and state donated, as a training loop runs it."""
    params = pytree(seed)
    state = tx.init(params)

    def one(params, state, grads):
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    if jit:
        one = jax.jit(one, donate_argnums=(0, 1))
    for t in range(steps):
        params, state = one(params, state, grads_for(params, 100 + t))
    return params


def assert_trees_close(a, b):
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), **TOL)


@pytest.mark.parametrize("ours,theirs", [
    (lambda: fj.adam(lr=0.01), lambda: optax.adam(0.01)),
    (lambda: fj.adam(lr=0.01, betas=(0.8, 0.99), eps=1e-6), lambda: optax.adam(0.01, b1=0.8, b2=0.99, eps=1e-6)),
    (lambda: fj.adamw(lr=0.01, weight_decay=0.1), lambda: optax.adamw(0.01, weight_decay=0.1)),
    (lambda: fj.sgd(lr=0.1), lambda: optax.sgd(0.1)),
    (lambda: fj.sgd(lr=0.1, momentum=0.9), lambda: optax.sgd(0.1, momentum=0.9)),
    (lambda: fj.sgd(lr=0.1, momentum=0.9, nesterov=True), lambda: optax.sgd(0.1, momentum=0.9, nesterov=True)),
    (lambda: fj.adam(lr=optax.exponential_decay(0.01, 2, 0.5)), lambda: optax.adam(optax.exponential_decay(0.01, 2, 0.5))),
    (lambda: fj.lion(lr=0.01, weight_decay=0.1), lambda: optax.lion(0.01, b1=0.9, b2=0.99, weight_decay=0.1)),
    (lambda: fj.adadelta(lr=0.5, rho=0.8), lambda: optax.adadelta(0.5, rho=0.8, eps=1e-6)),
    (lambda: fj.lamb(lr=0.01, weight_decay=0.1), lambda: optax.lamb(0.01, weight_decay=0.1)),
    (lambda: fj.lars(lr=0.5, weight_decay=0.01), lambda: optax.lars(0.5, weight_decay=0.01)),
    (lambda: fj.lars(lr=0.5, trust_coefficient=0.01, eps=1e-6, nesterov=True),
     lambda: optax.lars(0.5, trust_coefficient=0.01, eps=1e-6, nesterov=True)),
], ids=["adam", "adam-betas-eps", "adamw", "sgd", "sgd-momentum", "sgd-nesterov", "adam-schedule", "lion", "adadelta",
        "lamb", "lars", "lars-nesterov"])
@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_trajectories_equal_optax_where_the_algorithms_coincide(ours, theirs, jit):
    assert_trees_close(trajectory(ours(), jit=jit), trajectory(theirs(), jit=True))


@pytest.mark.parametrize("name,kwargs", [("adagrad", dict(lr=0.1, lr_decay=0.01)), ("rmsprop", dict(lr=0.01, centered=True, momentum=0.5)),
                                         ("adam", dict(lr=0.01, weight_decay=0.1, maximize=True)),
                                         ("adam", dict(lr=0.01, amsgrad=True)), ("adamax", dict(lr=0.01)),
                                         ("radam", dict(lr=0.01)), ("rprop", dict(lr=0.01)),
                                         ("sgd", dict(lr=0.1, momentum=0.9, dampening=0.5)),
                                         ("asgd", dict(lr=0.01, t0=3)), ("nadam", dict(lr=0.01))])
@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_trajectories_equal_the_reference(name, kwargs, jit):
    """Several of these pick their kernel by the step (SGD's first step, RAdam's rectification, ASGD's
    averaging from t0): inside jax.jit the step count is traced and the custom call picks it at run time."""
    params = pytree()
    tx = getattr(fj, name)(**kwargs)
    state = tx.init(params)
    ref_params = [np.asarray(x, np.float64).copy() for x in jax.tree_util.tree_leaves(params)]
    ref_states = [{} for _ in ref_params]
    fn = getattr(reference, name)

    def one(params, state, grads):
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    if jit:
        one = jax.jit(one, donate_argnums=(0, 1))
    for t in range(6):
        grads = grads_for(params, 100 + t)
        params, state = one(params, state, grads)
        for p, g, s in zip(ref_params, jax.tree_util.tree_leaves(grads), ref_states):
            fn(p, np.asarray(g, np.float64), s, **kwargs)
    for x, y in zip(jax.tree_util.tree_leaves(params), ref_params):
        np.testing.assert_allclose(np.asarray(x), y, **TOL)


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_update_leaves_its_inputs_untouched_and_the_old_state_valid(jit):
    """Not donated, the inputs of the custom call (whose outputs alias them) are copied by XLA first."""
    tx = fj.adam(lr=0.1)
    params = pytree()
    state0 = tx.init(params)
    grads = grads_for(params, 1)
    state0 = state0._replace(buffers=jax.tree_util.tree_map(jnp.asarray, state0.buffers))
    before = [np.array(x) for x in jax.tree_util.tree_leaves((params, grads, state0.buffers))]
    update = jax.jit(tx.update) if jit else tx.update
    u1, s1 = update(grads, state0, params)
    u2, s2 = update(grads, state0, params)  # the same state again: the same answer
    assert_trees_close(u1, u2)
    for x, x0 in zip(jax.tree_util.tree_leaves((params, grads, state0.buffers)), before):
        np.testing.assert_array_equal(np.asarray(x), x0)
    assert int(s1.count) == int(s2.count) == 1


def test_float64_params_with_x64_enabled_step_in_float64():
    with jax.enable_x64(True):
        params = {"w": jnp.asarray(np.random.default_rng(3).standard_normal(7))}
        assert params["w"].dtype == jnp.float64
        tx, theirs = fj.adam(lr=0.01), optax.adam(0.01)
        s, t = tx.init(params), theirs.init(params)
        p, q = params, params
        for k in range(4):
            g = {"w": jnp.asarray(np.random.default_rng(k).standard_normal(7))}
            u, s = jax.jit(tx.update)(g, s, p)
            p = optax.apply_updates(p, u)
            v, t = theirs.update(g, t, q)
            q = optax.apply_updates(q, v)
        assert p["w"].dtype == jnp.float64
        np.testing.assert_allclose(np.asarray(p["w"]), np.asarray(q["w"]), rtol=1e-12, atol=1e-14)


def test_mismatched_grads_and_mixed_dtypes_are_refused():
    tx = fj.adam(lr=0.1)
    params = pytree()
    state = tx.init(params)
    bad = jax.tree_util.tree_map(lambda p: jnp.zeros(p.shape + (1,), p.dtype), params)
    with pytest.raises(ValueError, match="grads leaf 0: shape"):
        tx.update(bad, state, params)
    with pytest.raises(ValueError, match="grads leaf 0: shape"):
        jax.jit(tx.update)(bad, state, params)
    mixed = {"a": jnp.zeros(3, jnp.float32), "b": jnp.zeros(3, jnp.bfloat16)}
    sgd = fj.sgd(lr=0.1, momentum=0.9)
    state = sgd.init({"a": jnp.zeros(3, jnp.float32), "b": jnp.zeros(3, jnp.float32)})
    with pytest.raises(TypeError, match="leaf 1: dtype bfloat16"):
        sgd.update(mixed, state, mixed)


def test_bad_hyperparameters_and_dtypes_are_refused():
    with pytest.raises(ValueError, match="lr"):
        fj.adam(lr=-1.0)
    with pytest.raises(TypeError, match="learning_rate"):
        fj.adam(learning_rate=0.1)
    with pytest.raises(TypeError, match="int32"):
        fj.sgd(lr=0.1).init({"a": jnp.zeros(3, jnp.int32)})


def test_the_state_keeps_only_the_buffers_the_hyperparameters_use():
    params = pytree()
    assert set(fj.adam(lr=0.1).init(params).buffers) == {"exp_avg", "exp_avg_sq"}
    assert set(fj.adam(lr=0.1, amsgrad=True).init(params).buffers) == {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"}
    assert set(fj.sgd(lr=0.1).init(params).buffers) == set()
    assert set(fj.rmsprop(lr=0.1, centered=True).init(params).buffers) == {"square_avg", "grad_avg"}


def test_a_ctrl_c_during_the_step_is_raised_after_it_and_does_not_kill_the_process():
    """The custom call asks Python for the step's scalars; a KeyboardInterrupt there cannot propagate
    through XLA (aborting would kill the process): the call is made again and the interrupt raised
    once the custom call has returned. The next step runs as usual."""
    from fusedopt import _core

    tx = fj.adam(lr=0.1)
    params = pytree()
    grads = grads_for(params, 2)
    expected, _ = tx.update(grads, tx.init(params), params)
    fj._register()
    calls = []

    def interrupted_once(*args):
        calls.append(args)
        if len(calls) == 1:
            raise KeyboardInterrupt
        return fj._scalars_for(*args)

    _core.set_xla_scalars(interrupted_once)
    try:
        with pytest.raises(KeyboardInterrupt):
            jax.block_until_ready(tx.update(grads, tx.init(params), params))
            for _ in range(1000):  # Python raises the interrupt at its next check
                pass
    finally:
        _core.set_xla_scalars(fj._scalars_for)
    assert len(calls) == 2 and calls[0] == calls[1]
    assert_trees_close(tx.update(grads, tx.init(params), params)[0], expected)


def test_a_schedule_in_plain_python_works_when_update_is_called_eagerly():
    """Eager calls run the update as one jitted computation, with the schedule's value computed outside
    it: a schedule that branches on the count in Python still works (inside the user's jax.jit it cannot)."""
    ours = trajectory(fj.adam(lr=lambda count: 0.05 if count < 3 else 0.01))
    theirs = trajectory(optax.adam(optax.piecewise_constant_schedule(0.05, {3: 0.2})))
    assert_trees_close(ours, theirs)


@pytest.mark.parametrize("name,kwargs", [("sgd", dict(lr=0.1, momentum=0.9)), ("radam", dict(lr=0.01)),
                                         ("rmsprop", dict(lr=0.01, centered=True))])
def test_float64_trajectories_under_jit_equal_the_reference(name, kwargs):
    """float64 (jax_enable_x64): odd sizes, the kernel picked by the step inside jax.jit."""
    with jax.enable_x64(True):
        rng = np.random.default_rng(7)
        shapes = [(7, 3), (13,), ()]
        params = [jnp.asarray(rng.standard_normal(s)) for s in shapes]
        tx = getattr(fj, name)(**kwargs)
        state = tx.init(params)
        ref_params = [np.asarray(p).copy() for p in params]
        ref_states = [{} for _ in ref_params]

        @jax.jit
        def one(params, state, grads):
            updates, state = tx.update(grads, state, params)
            return optax.apply_updates(params, updates), state

        for t in range(5):
            grads = [jnp.asarray(rng.standard_normal(s)) for s in shapes]
            params, state = one(params, state, grads)
            for p, g, s in zip(ref_params, grads, ref_states):
                getattr(reference, name)(p, np.asarray(g), s, **kwargs)
        for x, y in zip(params, ref_params):
            assert x.dtype == jnp.float64
            np.testing.assert_allclose(np.asarray(x), y, rtol=1e-10, atol=1e-12)
