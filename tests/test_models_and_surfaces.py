"""fusedopt.models (backprop against finite differences, training with fusedopt optimizers) and
fusedopt.surfaces (gradients against finite differences; every optimizer reaches the bowl's minimum)."""

import numpy as np
import pytest

import fusedopt
from fusedopt import models, surfaces
from fusedopt.demo.paths import OPTIMIZERS as PATH_OPTIMIZERS, run_path


def finite_difference(f, point, eps=1e-6):
    point = np.asarray(point, np.float64)
    g = np.empty_like(point)
    for k in range(point.shape[-1]):
        step = np.zeros_like(point)
        step[..., k] = eps
        g[..., k] = (f(point + step) - f(point - step)) / (2 * eps)
    return g


@pytest.mark.parametrize("name", list(surfaces.SURFACES))
def test_each_surfaces_gradient_matches_finite_differences(name):
    s = surfaces.SURFACES[name]
    rng = np.random.default_rng(0)
    lo = np.array([b[0] for b in s.bounds])
    hi = np.array([b[1] for b in s.bounds])
    points = lo + (hi - lo) * rng.random((50, s.dim))
    np.testing.assert_allclose(s.gradient(points), finite_difference(s.value, points), rtol=1e-6, atol=1e-5)
    for m in s.minima:  # the minima are minima: gradient ~0 (Himmelblau's to 6 digits)
        np.testing.assert_allclose(s.gradient(np.array(m)), 0.0, atol=1e-3)
        assert s.value(np.array(m)) <= s.value(np.array(s.start))


def test_a_surface_refuses_points_of_the_wrong_shape():
    with pytest.raises(ValueError, match="2 coordinates"):
        surfaces.beale.gradient(np.zeros(3))
    with pytest.raises(ValueError, match="floating"):
        surfaces.beale.value(np.zeros(2, int))


@pytest.mark.parametrize("label", [label for label, _, _ in PATH_OPTIMIZERS])
@pytest.mark.parametrize("surface", ["bowl_1d", "ill_conditioned_bowl"])
def test_every_optimizer_reaches_the_minimum_of_the_convex_bowl(label, surface):
    s = surfaces.SURFACES[surface]
    path = run_path(s, label, steps=3000)
    assert path.shape == (3001, s.dim)
    np.testing.assert_allclose(path[0], s.start)
    # RMSProp with a constant lr ends in a limit cycle about the minimum, a step (~lr) wide: the
    # last points average to the minimum, and the last is within max(lr, 2e-2) of it.
    lr = s.lr_for(next(c for l, c, _ in PATH_OPTIMIZERS if l == label))
    assert np.abs(path[-200:].mean(axis=0)).max() < 1e-2, (label, path[-200:].mean(axis=0))
    assert np.abs(path[-1]).max() <= max(lr, 2e-2), (label, path[-1])


@pytest.mark.parametrize("activation", list(models.ACTIVATIONS))
@pytest.mark.parametrize("loss", models.LOSSES)
def test_backprop_equals_numerical_gradients(activation, loss):
    model = models.MLP([3, 5, 4, 2], activation=activation, init="xavier_normal", seed=1, dtype=np.float64)
    for b in model.biases:  # nonzero biases, so ReLU's kinks are not at the points checked
        b[...] = np.linspace(-0.3, 0.4, b.size)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((7, 3))
    y = rng.standard_normal((7, 2)) if loss == "mse" else rng.integers(0, 2, 7)
    value, grads = model.loss_and_grads(x, y, loss)
    numeric = models.numerical_grad(lambda: model.loss(x, y, loss), model.params)
    assert value == pytest.approx(model.loss(x, y, loss))
    for k, (g, n) in enumerate(zip(grads, numeric)):
        assert g.shape == model.params[k].shape and g.dtype == np.float64
        np.testing.assert_allclose(g, n, rtol=1e-5, atol=1e-8, err_msg=f"params[{k}]")


def test_losses_against_their_formulas():
    model = models.MLP([2, 3], seed=0, dtype=np.float64)
    x = np.array([[1.0, 2.0], [-1.0, 0.5]])
    logits = x @ model.weights[0].T + model.biases[0]
    labels = np.array([2, 0])
    expected = -np.mean([logits[i, labels[i]] - np.log(np.exp(logits[i]).sum()) for i in range(2)])
    assert model.loss(x, labels, "cross_entropy") == pytest.approx(expected, rel=1e-12)
    y = np.ones((2, 3))
    assert model.loss(x, y, "mse") == pytest.approx(np.mean((logits - 1) ** 2), rel=1e-12)


@pytest.mark.parametrize("init", ["xavier_uniform", "he_normal", "lecun_uniform", "zeros"])
def test_init_schemes_give_their_distributions(init):
    model = models.MLP([400, 300, 10], init=init, seed=3, dtype=np.float64)
    w = model.weights[0]
    expected_std = {"xavier_uniform": np.sqrt(2 / 700), "he_normal": np.sqrt(2 / 400),
                    "lecun_uniform": np.sqrt(1 / 400), "zeros": 0.0}[init]
    assert w.std() == pytest.approx(expected_std, rel=0.02, abs=1e-12)
    assert all(not b.any() for b in model.biases)


def test_training_with_a_fused_optimizer_lowers_the_loss_and_zero_init_does_not_break_symmetry():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 2))
    labels = (x[:, 0] * x[:, 1] > 0).astype(np.int64)  # XOR of signs: needs a hidden layer
    results = {}
    for init in ("xavier_uniform", "zeros"):
        model = models.MLP([2, 16, 2], activation="tanh", init=init, seed=0)
        opt = fusedopt.Adam(model.params, lr=0.05)
        history = models.fit(model, opt, x, labels, loss="cross_entropy", batch_size=20, epochs=60, seed=0)
        assert len(history["update_loss"]) == 600 and len(history["epoch_loss"]) == 60
        results[init] = (history["epoch_loss"][-1], np.mean(model.predict(x) == labels), model)
    assert results["xavier_uniform"][1] > 0.95
    zero_model = results["zeros"][2]
    assert not zero_model.weights[0].any()  # every hidden unit the same: no gradient ever reaches W_1
    assert results["zeros"][1] < 0.7


def test_bad_model_arguments_are_refused():
    with pytest.raises(ValueError, match="sizes"):
        models.MLP([3])
    with pytest.raises(ValueError, match="activation"):
        models.MLP([3, 2], activation="gelu")
    with pytest.raises(ValueError, match="init"):
        models.MLP([3, 2], init="orthogonal")
    model = models.MLP([3, 2])
    with pytest.raises(ValueError, match=r"x: expected shape \(batch, 3\)"):
        model.loss(np.zeros((4, 2)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="labels must be in"):
        model.loss(np.zeros((2, 3)), np.array([0, 5]), "cross_entropy")
    with pytest.raises(ValueError, match="loss"):
        model.loss(np.zeros((2, 3)), np.zeros((2, 2)), "hinge")
    before = [p.copy() for p in model.params]
    with pytest.raises(ValueError, match="one target per sample"):
        models.fit(model, fusedopt.SGD(model.params, lr=0.1), np.zeros((5, 3)), np.zeros((4, 2)))
    assert all(np.array_equal(a, b) for a, b in zip(before, model.params))
