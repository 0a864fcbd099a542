"""Adamax: the spec and the functional step (the math: rules/adamax.hpp)."""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

from ._checks import Betas, Flag, NonNegative
from ._spec import Buffer, Hyper, Spec, run

ADAMAX = Spec(
    "adamax", "Adamax", rule="adamax",
    hypers=(Hyper("lr", 2e-3, NonNegative(0.5)), Hyper("betas", (0.9, 0.999), Betas()),
            Hyper("eps", 1e-8, NonNegative(1e-3, smallest=1e-8)), Hyper("weight_decay", 0.0, NonNegative(0.2)),
            Hyper("maximize", False, Flag())),
    buffers=(Buffer("exp_avg", "exp_avgs"), Buffer("exp_inf", "exp_infs")),
    flags=lambda h, step: {},
    scalars=lambda h, step: dict(grad_sign=-1.0 if h["maximize"] else 1.0, weight_decay=h["weight_decay"],
                                 beta1=h["betas"][0], one_minus_beta1=1.0 - h["betas"][0], beta2=h["betas"][1],
                                 eps=h["eps"], clr=h["lr"] / (1.0 - h["betas"][0] ** step)),
    torch_fused=False, bench=dict(lr=2e-3),
    summary="Adamax: Adam with the infinity norm in place of the second moment (torch.optim.Adamax).")


def adamax(params: Sequence, grads: Sequence, exp_avgs: Sequence, exp_infs: Sequence, *, step: int,
           lr: float = 2e-3, betas: Tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
           weight_decay: float = 0.0, maximize: bool = False,
           master_params: Optional[Sequence] = None, rounding_seed: Optional[int] = None) -> None:
    r"""Fused Adamax step over lists of arrays, in place (Kingma & Ba, 2015, §7.1).

    .. math::
        g &= \pm\nabla + \lambda p \\
        m &= \beta_1 m + (1 - \beta_1) g \\
        u &= \max(\beta_2 u, |g| + \epsilon) \\
        p &= p - \frac{\eta}{1 - \beta_1^t} \cdot \frac{m}{u}

    .. warning:: eps is added to |g| inside the maximum, as in torch; optax's ``adamax`` adds it to
       u in the denominator instead, so small gradients give other numbers.

    Args:
        params: arrays updated in place (C-contiguous, writable, float32 or float64).
        grads: one gradient per param, same shape and dtype.
        exp_avgs, exp_infs: :math:`m` and :math:`u`, one per param (start at zero).
        step: the step being taken :math:`t`, counting from 1.
        lr: :math:`\eta` (default: 2e-3).
        betas: :math:`(\beta_1, \beta_2)` (default: (0.9, 0.999)).
        eps: :math:`\epsilon` (default: 1e-8).
        weight_decay: L2 penalty :math:`\lambda` added to the gradient (default: 0).
        maximize: ascend instead of descend (default: False).

    ``master_params``, ``rounding_seed`` and 16-bit lists: README, "Mixed precision".

    Example::

        fusedopt.functional.adamax([w], [g], [m], [u], step=1, lr=2e-3)
    """
    run(ADAMAX, params, grads, dict(exp_avgs=exp_avgs, exp_infs=exp_infs), step,
        dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, maximize=maximize),
        master_params=master_params, rounding_seed=rounding_seed)


adamax.spec = ADAMAX  # type: ignore[attr-defined]
