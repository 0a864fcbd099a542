"""ASGD: the spec and the functional step (the math: rules/asgd.hpp)."""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

from ._checks import Flag, NonNegative
from ._spec import Buffer, Hyper, Spec, run


def eta_and_mu(h, step: int) -> Tuple[float, float]:
    """torch's per-param (eta, mu) used by step ``step``: made at the end of step − 1 (lr and 1 before
    the first step)."""
    done = step - 1
    eta = h["lr"] / (1.0 + h["lambd"] * h["lr"] * done) ** h["alpha"]
    return eta, 1.0 / max(1.0, done - h["t0"])


def _scalars(h, step):
    eta, mu = eta_and_mu(h, step)
    return dict(grad_sign=-1.0 if h["maximize"] else 1.0, weight_decay=h["weight_decay"],
                decay=1.0 - h["lambd"] * eta, eta=eta, mu=mu)


ASGD = Spec(
    "asgd", "ASGD", rule="asgd",
    hypers=(Hyper("lr", 1e-2, NonNegative(0.5)), Hyper("lambd", 1e-4, NonNegative(0.01)),
            Hyper("alpha", 0.75, NonNegative(1.0)), Hyper("t0", 1e6, NonNegative(10.0)),
            Hyper("weight_decay", 0.0, NonNegative(0.2)), Hyper("maximize", False, Flag())),
    buffers=(Buffer("ax", "axs"),),
    flags=lambda h, step: {"averaging": eta_and_mu(h, step)[1] != 1.0}, scalars=_scalars, flags_use_step=True,
    torch_fused=False, bench=dict(lr=1e-2),
    derived_state=lambda h, step: dict(zip(("eta", "mu"), eta_and_mu(h, step + 1))),
    summary="ASGD: SGD with a decaying step and the running average of the iterates (torch.optim.ASGD).")


def asgd(params: Sequence, grads: Sequence, axs: Sequence, *, step: int, lr: float = 1e-2, lambd: float = 1e-4,
         alpha: float = 0.75, t0: float = 1e6, weight_decay: float = 0.0, maximize: bool = False,
         master_params: Optional[Sequence] = None, rounding_seed: Optional[int] = None) -> None:
    r"""Fused ASGD step over lists of arrays, in place (averaged SGD, Polyak & Juditsky, 1992).

    .. math::
        \eta_t &= \eta / (1 + \lambda \eta (t - 1))^\alpha, \quad \mu_t = 1 / \max(1, t - 1 - t_0) \\
        g &= \pm\nabla + w p \\
        p &= p\,(1 - \lambda \eta_t) - \eta_t g \\
        a &= a + \mu_t (p - a) \ \text{ if } \mu_t \ne 1, \text{ else } a = p

    :math:`\eta_t, \mu_t` are torch's per-param ``eta`` and ``mu`` (each made at the end of the step
    before), computed here from the step count and the current hyperparameters, in float64. torch
    keeps them as tensors of its default dtype (float32), and with an lr that changes between steps
    its η_t uses the lr of step t − 1, where this uses the lr of step t.

    Args:
        params: arrays updated in place (C-contiguous, writable, float32 or float64).
        grads: one gradient per param, same shape and dtype.
        axs: the averaged params :math:`a`, one per param (start at zero).
        step: the step being taken :math:`t`, counting from 1.
        lr: :math:`\eta` (default: 1e-2).
        lambd: the decay term :math:`\lambda` (default: 1e-4).
        alpha: the power :math:`\alpha` of the step-size decay (default: 0.75).
        t0: the step from which the average is taken, :math:`t_0` (default: 1e6).
        weight_decay: L2 penalty :math:`w` added to the gradient (default: 0).
        maximize: ascend instead of descend (default: False).

    ``master_params``, ``rounding_seed`` and 16-bit lists: README, "Mixed precision".

    Example::

        fusedopt.functional.asgd([w], [g], [np.zeros_like(w)], step=1, lr=1e-2)
    """
    run(ASGD, params, grads, dict(axs=axs), step,
        dict(lr=lr, lambd=lambd, alpha=alpha, t0=t0, weight_decay=weight_decay, maximize=maximize),
        master_params=master_params, rounding_seed=rounding_seed)


asgd.spec = ASGD  # type: ignore[attr-defined]
