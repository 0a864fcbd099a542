from __future__ import annotations

from typing import Optional, Sequence, Tuple

from .. import backends
from . import _checks


def check_adam(*, step, lr, betas, eps, weight_decay, amsgrad, maximize) -> None:
    _checks.step(step)
    _checks.non_negative("lr", lr)
    _checks.betas(betas)
    _checks.non_negative("eps", eps)
    _checks.non_negative("weight_decay", weight_decay)
    _checks.flag("amsgrad", amsgrad)
    _checks.flag("maximize", maximize)


def _adam(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, *, step, lr, betas, eps, weight_decay, amsgrad,
          maximize, decoupled_weight_decay) -> None:
    check_adam(step=step, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad, maximize=maximize)
    backends.backend_for(params).adam(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, step=step, lr=lr,
                                      beta1=betas[0], beta2=betas[1], eps=eps, weight_decay=weight_decay,
                                      amsgrad=amsgrad, maximize=maximize,
                                      decoupled_weight_decay=decoupled_weight_decay)


def adam(params: Sequence, grads: Sequence, exp_avgs: Sequence, exp_avg_sqs: Sequence,
         max_exp_avg_sqs: Optional[Sequence] = None, *, step: int, lr: float = 1e-3,
         betas: Tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0,
         amsgrad: bool = False, maximize: bool = False) -> None:
    r"""Fused Adam step over lists of arrays, in place.

    .. math::
        g &= \pm\nabla + \lambda p \\
        m &= \beta_1 m + (1 - \beta_1) g \\
        v &= \beta_2 v + (1 - \beta_2) g^2 \\
        \hat v &= \max(\hat v, v) \ \text{(amsgrad; else } \hat v = v) \\
        p &= p - \frac{\eta}{1 - \beta_1^t} \cdot \frac{m}{\sqrt{\hat v} / \sqrt{1 - \beta_2^t} + \epsilon}

    .. warning:: eps is added after the bias-corrected square root, as in torch and optax; Keras
       adds an eps that is not bias-corrected ("epsilon hat"), so the same value gives other numbers.

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

    Example::

        fusedopt.functional.adam([w], [g], [m], [v], step=1, lr=1e-3)
    """
    _adam(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, step=step, lr=lr, betas=betas, eps=eps,
          weight_decay=weight_decay, amsgrad=amsgrad, maximize=maximize, decoupled_weight_decay=False)


def adamw(params: Sequence, grads: Sequence, exp_avgs: Sequence, exp_avg_sqs: Sequence,
          max_exp_avg_sqs: Optional[Sequence] = None, *, step: int, lr: float = 1e-3,
          betas: Tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 1e-2,
          amsgrad: bool = False, maximize: bool = False) -> None:
    r"""Fused AdamW step (Adam with decoupled weight decay) over lists of arrays, in place.

    .. math::
        p &= p\,(1 - \eta\lambda) \\
        &\text{then the Adam update of } :func:`adam` \text{ with no } \lambda p \text{ in } g

    Args: as :func:`adam`, but ``weight_decay`` (default: 1e-2) is decoupled.

    .. warning:: optax's ``adamw`` multiplies the decay by the schedule's lr the same way; Keras
       ``AdamW`` too. Some older code applies ``p -= wd * p`` without lr: that is another algorithm.

    Example::

        fusedopt.functional.adamw([w], [g], [m], [v], step=1, lr=1e-3, weight_decay=1e-2)
    """
    _adam(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, step=step, lr=lr, betas=betas, eps=eps,
          weight_decay=weight_decay, amsgrad=amsgrad, maximize=maximize, decoupled_weight_decay=True)
