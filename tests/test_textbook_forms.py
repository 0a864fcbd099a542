"""The textbook forms of momentum and Nesterov against the torch form the library implements:
equal while lr is constant, different once lr changes."""

import numpy as np
import pytest

import fusedopt
from fusedopt import reference

A = np.diag([1.0, 3.0, 10.0])  # f(x) = ½ xᵀAx, ∇f(x) = Ax


def grad_fn(x):
    return A @ x


def lrs(changing, steps=30):
    return [0.05 if (not changing or t < 10) else 0.02 for t in range(steps)]


def run_torch_form(lr_schedule, nesterov, start):
    p, state = start.copy(), {}
    for lr in lr_schedule:
        reference.sgd(p, grad_fn(p), state, lr=lr, momentum=0.9, nesterov=nesterov)
    return p


def run_momentum_textbook(lr_schedule, start):
    p, state = start.copy(), {}
    for lr in lr_schedule:
        reference.momentum_textbook(p, grad_fn(p), state, lr=lr, momentum=0.9)
    return p


def run_nesterov_textbook(lr_schedule, start):
    theta, state = start.copy(), {}
    for lr in lr_schedule:
        reference.nesterov_textbook(theta, grad_fn, state, lr=lr, momentum=0.9)
    return theta + 0.9 * state["velocity"]  # φ = θ + μv is what the torch form iterates


START = np.array([1.0, -2.0, 0.5])


@pytest.mark.parametrize("nesterov", [False, True], ids=["momentum", "nesterov"])
def test_textbook_equals_torch_form_for_constant_lr(nesterov):
    textbook = run_nesterov_textbook(lrs(False), START) if nesterov else run_momentum_textbook(lrs(False), START)
    np.testing.assert_allclose(run_torch_form(lrs(False), nesterov, START), textbook, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("nesterov", [False, True], ids=["momentum", "nesterov"])
def test_textbook_differs_from_torch_form_when_lr_changes(nesterov):
    textbook = run_nesterov_textbook(lrs(True), START) if nesterov else run_momentum_textbook(lrs(True), START)
    torch_form = run_torch_form(lrs(True), nesterov, START)
    assert np.max(np.abs(torch_form - textbook)) > 1e-4


def test_fused_sgd_momentum_equals_textbook_for_constant_lr():
    p = START.copy()
    opt = fusedopt.SGD([p], lr=0.05, momentum=0.9)
    for _ in range(30):
        opt.step([grad_fn(p)])
    np.testing.assert_allclose(p, run_momentum_textbook(lrs(False), START), rtol=1e-12, atol=1e-14)
