"""RAdam: the spec and the functional step (the math: rules/radam.hpp)."""

from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple

from ._checks import Betas, Flag, NonNegative
from ._spec import Buffer, Hyper, Spec, run
from .adam import weight_decay_scalars


def _rho_t(beta2: float, step: int) -> Tuple[float, float]:
    """(ρ∞, ρt): the maximum and the current length of the approximated simple moving average."""
    rho_inf = 2.0 / (1.0 - beta2) - 1.0
    return rho_inf, rho_inf - 2.0 * step * beta2**step / (1.0 - beta2**step)


def _flags(h, step):
    return {"rectified": _rho_t(h["betas"][1], step)[1] > 5.0}


def _scalars(h, step):
    lr, (beta1, beta2) = h["lr"], h["betas"]
    bias_correction1 = 1.0 - beta1**step
    bias_correction2 = 1.0 - beta2**step
    rho_inf, rho_t = _rho_t(beta2, step)
    if rho_t > 5.0:
        rect = math.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t))
        step_size = lr * rect * math.sqrt(bias_correction2) / bias_correction1
    else:
        step_size = lr / bias_correction1
    return dict(grad_sign=-1.0 if h["maximize"] else 1.0, **weight_decay_scalars(h, h["decoupled_weight_decay"]),
                beta1=beta1, one_minus_beta1=1.0 - beta1,
                beta2=beta2, one_minus_beta2=1.0 - beta2, step_size=step_size, eps=h["eps"])


RADAM = Spec(
    "radam", "RAdam", rule="radam",
    hypers=(Hyper("lr", 1e-3, NonNegative(0.5)), Hyper("betas", (0.9, 0.999), Betas()),
            Hyper("eps", 1e-8, NonNegative(1e-3, smallest=1e-8)), Hyper("weight_decay", 0.0, NonNegative(0.2)),
            Hyper("decoupled_weight_decay", False, Flag()), Hyper("maximize", False, Flag())),
    buffers=(Buffer("exp_avg", "exp_avgs"), Buffer("exp_avg_sq", "exp_avg_sqs")),
    flags=_flags, scalars=_scalars, flags_use_step=True, torch_fused=False, bench=dict(lr=1e-3),
    summary="RAdam: Adam with the variance of its adaptive learning rate rectified (torch.optim.RAdam).")


def radam(params: Sequence, grads: Sequence, exp_avgs: Sequence, exp_avg_sqs: Sequence, *, step: int,
          lr: float = 1e-3, betas: Tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0,
          decoupled_weight_decay: bool = False, maximize: bool = False,
          master_params: Optional[Sequence] = None, rounding_seed: Optional[int] = None) -> None:
    r"""Fused RAdam step over lists of arrays, in place (Liu et al., 2020).

    .. math::
        g &= \pm\nabla + \lambda p \quad (\text{decoupled: } p = p\,(1 - \eta\lambda)) \\
        m &= \beta_1 m + (1 - \beta_1) g, \quad v = \beta_2 v + (1 - \beta_2) g^2 \\
        \rho_\infty &= 2/(1 - \beta_2) - 1, \quad \rho_t = \rho_\infty - 2t\beta_2^t/(1 - \beta_2^t) \\
        p &= p - \frac{\eta\, r_t \sqrt{1 - \beta_2^t}}{1 - \beta_1^t} \cdot \frac{m}{\sqrt{v} + \epsilon}
            \ \text{ if } \rho_t > 5, \quad r_t = \sqrt{\tfrac{(\rho_t - 4)(\rho_t - 2)\rho_\infty}
            {(\rho_\infty - 4)(\rho_\infty - 2)\rho_t}} \\
        p &= p - \frac{\eta}{1 - \beta_1^t}\, m \ \text{ otherwise (the first steps)}

    .. warning:: eps is added to √v before the bias correction √(1 − β2^t) multiplies, as in torch;
       optax's ``radam`` adds it after (``eps_root`` aside), so the same eps gives slightly other
       numbers, and its threshold is the same ρt > 5.

    Args:
        params: arrays updated in place (C-contiguous, writable, float32 or float64).
        grads: one gradient per param, same shape and dtype.
        exp_avgs, exp_avg_sqs: :math:`m` and :math:`v`, one per param (start at zero).
        step: the step being taken :math:`t`, counting from 1.
        lr: :math:`\eta` (default: 1e-3).
        betas: :math:`(\beta_1, \beta_2)` (default: (0.9, 0.999)).
        eps: :math:`\epsilon` (default: 1e-8).
        weight_decay: :math:`\lambda` (default: 0), an L2 term unless ``decoupled_weight_decay``.
        decoupled_weight_decay: multiply p by (1 − ηλ) instead, as AdamW (default: False).
        maximize: ascend instead of descend (default: False).

    ``master_params``, ``rounding_seed`` and 16-bit lists: README, "Mixed precision".

    Example::

        fusedopt.functional.radam([w], [g], [m], [v], step=1, lr=1e-3)
    """
    run(RADAM, params, grads, dict(exp_avgs=exp_avgs, exp_avg_sqs=exp_avg_sqs), step,
        dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, decoupled_weight_decay=decoupled_weight_decay,
             maximize=maximize),
        master_params=master_params, rounding_seed=rounding_seed)


radam.spec = RADAM  # type: ignore[attr-defined]
