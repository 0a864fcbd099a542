"""Adam and AdamW: the spec and the functional step (the math: rules/adam.hpp)."""

from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple

from ._checks import Betas, Flag, NonNegative
from ._spec import Buffer, Hyper, Spec, run


def weight_decay_scalars(h, decoupled: bool):
    """The rules' l2 and decay fields: wd·p added to g (Adam), or p *= 1 − lr·wd (AdamW, decoupled)."""
    wd = h["weight_decay"]
    return dict(l2=0.0 if decoupled else wd, decay=1.0 - h["lr"] * wd if decoupled else 1.0)


def _adam_scalars(h, step, decoupled: bool):
    lr, (beta1, beta2) = h["lr"], h["betas"]
    bias_correction1 = 1.0 - beta1**step
    bias_correction2_sqrt = math.sqrt(1.0 - beta2**step)
    return dict(grad_sign=-1.0 if h["maximize"] else 1.0, **weight_decay_scalars(h, decoupled),
                beta1=beta1, one_minus_beta1=1.0 - beta1, beta2=beta2, one_minus_beta2=1.0 - beta2,
                step_size=lr * bias_correction2_sqrt / bias_correction1,
                eps=h["eps"] * bias_correction2_sqrt)


def _hypers(weight_decay: float):
    return (Hyper("lr", 1e-3, NonNegative(0.5)), Hyper("betas", (0.9, 0.999), Betas()),
            Hyper("eps", 1e-8, NonNegative(1e-3, smallest=1e-8)), Hyper("weight_decay", weight_decay, NonNegative(0.2)),
            Hyper("amsgrad", False, Flag()), Hyper("maximize", False, Flag()))


_BUFFERS = (Buffer("exp_avg", "exp_avgs"), Buffer("exp_avg_sq", "exp_avg_sqs"),
            Buffer("max_exp_avg_sq", "max_exp_avg_sqs", when="amsgrad"))

ADAM = Spec("adam", "Adam", rule="adam", hypers=_hypers(0.0), buffers=_BUFFERS,
            flags=lambda h, step: {"amsgrad": h["amsgrad"]},
            scalars=lambda h, step: _adam_scalars(h, step, decoupled=False),
            bench=dict(lr=1e-3), summary="Adam, with optional AMSGrad (torch.optim.Adam).")
ADAMW = Spec("adamw", "AdamW", rule="adam", hypers=_hypers(1e-2), buffers=_BUFFERS,
             flags=lambda h, step: {"amsgrad": h["amsgrad"]},
             scalars=lambda h, step: _adam_scalars(h, step, decoupled=True),
             bench=dict(lr=1e-3, weight_decay=1e-2), summary="AdamW: Adam with decoupled weight decay (torch.optim.AdamW).")


def adam(params: Sequence, grads: Sequence, exp_avgs: Sequence, exp_avg_sqs: Sequence,
         max_exp_avg_sqs: Optional[Sequence] = None, *, step: int, lr: float = 1e-3,
         betas: Tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0,
         amsgrad: bool = False, maximize: bool = False,
         master_params: Optional[Sequence] = None, rounding_seed: Optional[int] = None) -> None:
    r"""Fused Adam step over lists of arrays, in place.

    .. math::
        g &= \pm\nabla + \lambda p \\
        m &= \beta_1 m + (1 - \beta_1) g \\
        v &= \beta_2 v + (1 - \beta_2) g^2 \\
        \hat v &= \max(\hat v, v) \ \text{(amsgrad; else } \hat v = v) \\
        p &= p - \frac{\eta}{1 - \beta_1^t} \cdot \frac{m}{\sqrt{\hat v} / \sqrt{1 - \beta_2^t} + \epsilon}

    Bias correction is always on, as in torch (Adam without it is not offered).

    .. warning:: eps is added after the bias-corrected square root, as in torch and optax; Keras
       adds an eps that is not bias-corrected ("epsilon hat"), so the same value gives other numbers.
       ``weight_decay`` here is an L2 term added to the gradient; for decoupled weight decay use
       :func:`adamw`.

    Args:
        params: arrays updated in place (C-contiguous, writable, float32 or float64).
        grads: one gradient per param, same shape and dtype.
        exp_avgs, exp_avg_sqs: :math:`m` and :math:`v`, one per param (start at zero).
        max_exp_avg_sqs: :math:`\hat v`, required when ``amsgrad``.
        step: the step being taken :math:`t`, counting from 1.
        lr: :math:`\eta` (default: 1e-3).
        betas: :math:`(\beta_1, \beta_2)` (default: (0.9, 0.999)).
        eps: :math:`\epsilon` (default: 1e-8).
        weight_decay: L2 penalty :math:`\lambda` added to the gradient (default: 0).
        amsgrad: use the running maximum of :math:`v` (default: False).
        maximize: ascend instead of descend (default: False).

    ``master_params``, ``rounding_seed`` and 16-bit lists: README, "Mixed precision".

    Example::

        fusedopt.functional.adam([w], [g], [m], [v], step=1, lr=1e-3)
    """
    run(ADAM, params, grads, dict(exp_avgs=exp_avgs, exp_avg_sqs=exp_avg_sqs, max_exp_avg_sqs=max_exp_avg_sqs),
        step, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad, maximize=maximize),
        master_params=master_params, rounding_seed=rounding_seed)


def adamw(params: Sequence, grads: Sequence, exp_avgs: Sequence, exp_avg_sqs: Sequence,
          max_exp_avg_sqs: Optional[Sequence] = None, *, step: int, lr: float = 1e-3,
          betas: Tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 1e-2,
          amsgrad: bool = False, maximize: bool = False,
          master_params: Optional[Sequence] = None, rounding_seed: Optional[int] = None) -> None:
    r"""Fused AdamW step (Adam with decoupled weight decay) over lists of arrays, in place.

    .. math::
        p &= p\,(1 - \eta\lambda) \\
        &\text{then the Adam update of } :func:`adam` \text{ with no } \lambda p \text{ in } g

    Args: as :func:`adam`, but ``weight_decay`` (default: 1e-2) is decoupled.

    .. warning:: optax's ``adamw`` multiplies the decay by the schedule's lr the same way; Keras
       ``AdamW`` too. Some older code applies ``p -= wd * p`` without lr: that is another algorithm.

    ``master_params``, ``rounding_seed`` and 16-bit lists: README, "Mixed precision".

    Example::

        fusedopt.functional.adamw([w], [g], [m], [v], step=1, lr=1e-3, weight_decay=1e-2)
    """
    run(ADAMW, params, grads, dict(exp_avgs=exp_avgs, exp_avg_sqs=exp_avg_sqs, max_exp_avg_sqs=max_exp_avg_sqs),
        step, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad, maximize=maximize),
        master_params=master_params, rounding_seed=rounding_seed)


adam.spec, adamw.spec = ADAM, ADAMW  # type: ignore[attr-defined]
