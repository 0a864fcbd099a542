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


def trajectory(tx, steps=8, seed=0):
    params = pytree(seed)
    state = tx.init(params)
    for t in range(steps):
        updates, state = tx.update(grads_for(params, 100 + t), state, params)
        params = optax.apply_updates(params, updates)
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
def test_trajectories_equal_optax_where_the_algorithms_coincide(ours, theirs):
    assert_trees_close(trajectory(ours()), trajectory(theirs()))


@pytest.mark.parametrize("name,kwargs", [("adagrad", dict(lr=0.1, lr_decay=0.01)), ("rmsprop", dict(lr=0.01, centered=True, momentum=0.5)),
                                         ("adam", dict(lr=0.01, weight_decay=0.1, maximize=True)),
                                         ("adam", dict(lr=0.01, amsgrad=True)), ("adamax", dict(lr=0.01)),
                                         ("radam", dict(lr=0.01)), ("rprop", dict(lr=0.01))])
def test_trajectories_equal_the_reference(name, kwargs):
    params = pytree()
    tx = getattr(fj, name)(**kwargs)
    state = tx.init(params)
    ref_params = [np.asarray(x, np.float64).copy() for x in jax.tree_util.tree_leaves(params)]
    ref_states = [{} for _ in ref_params]
    fn = getattr(reference, name)
    for t in range(6):
        grads = grads_for(params, 100 + t)
        updates, state = tx.update(grads, state, params)
        params = optax.apply_updates(params, updates)
        for p, g, s in zip(ref_params, jax.tree_util.tree_leaves(grads), ref_states):
            fn(p, np.asarray(g, np.float64), s, **kwargs)
    for x, y in zip(jax.tree_util.tree_leaves(params), ref_params):
        np.testing.assert_allclose(np.asarray(x), y, **TOL)


def test_update_leaves_its_inputs_untouched_and_the_old_state_valid():
    tx = fj.adam(lr=0.1)
    params = pytree()
    state0 = tx.init(params)
    grads = grads_for(params, 1)
    before = [np.array(x) for x in jax.tree_util.tree_leaves(state0.buffers)]
    u1, s1 = tx.update(grads, state0, params)
    u2, s2 = tx.update(grads, state0, params)  # the same state again: the same answer
    assert_trees_close(u1, u2)
    for x, x0 in zip(jax.tree_util.tree_leaves(state0.buffers), before):
        np.testing.assert_array_equal(x, x0)
    assert s1.count == s2.count == 1


def test_bad_hyperparameters_and_dtypes_are_refused():
    with pytest.raises(ValueError, match="lr"):
        fj.adam(lr=-1.0)
    with pytest.raises(TypeError, match="learning_rate"):
        fj.adam(learning_rate=0.1)
    with pytest.raises(TypeError, match="int32"):
        fj.sgd(lr=0.1).init({"a": jnp.zeros(3, jnp.int32)})
