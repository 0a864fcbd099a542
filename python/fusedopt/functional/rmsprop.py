from __future__ import annotations

from typing import Optional, Sequence

from .. import backends
from . import _checks


def check_rmsprop(*, step, lr, alpha, eps, weight_decay, momentum, centered, maximize) -> None:
    _checks.step(step)
    _checks.non_negative("lr", lr)
    _checks.in_unit_interval("alpha", alpha, closed=True)
    _checks.non_negative("eps", eps)
    _checks.non_negative("weight_decay", weight_decay)
    _checks.non_negative("momentum", momentum)
    _checks.flag("centered", centered)
    _checks.flag("maximize", maximize)


def rmsprop(params: Sequence, grads: Sequence, square_avgs: Sequence, grad_avgs: Optional[Sequence] = None,
            momentum_buffers: Optional[Sequence] = None, *, step: int, lr: float = 1e-2, alpha: float = 0.99,
            eps: float = 1e-8, weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False,
            maximize: bool = False) -> None:
    r"""Fused RMSprop step over lists of arrays, in place.

    .. math::
        g &= \pm\nabla + \lambda p \\
        v &= \alpha v + (1 - \alpha) g^2 \\
        \tilde v &= v - a^2,\ a = \alpha a + (1 - \alpha) g \quad\text{(centered; else } \tilde v = v) \\
        b &= \mu b + g / (\sqrt{\tilde v} + \epsilon),\ p = p - \eta b \quad (\mu > 0) \\
        p &= p - \eta\, g / (\sqrt{\tilde v} + \epsilon) \quad (\mu = 0)

    .. warning:: Keras/TF put eps inside the square root and default rho=0.9; torch (and this) use
       eps outside and alpha=0.99.

    Args:
        params: arrays updated in place (C-contiguous, writable, float32 or float64).
        grads: one gradient per param, same shape and dtype.
        square_avgs: :math:`v`, one per param (start at zero).
        grad_avgs: :math:`a`, required when ``centered``.
        momentum_buffers: :math:`b`, required when ``momentum > 0``.
        step: the step being taken, counting from 1 (RMSprop's update does not use it).
        lr: :math:`\eta` (default: 1e-2).
        alpha: smoothing constant :math:`\alpha` (default: 0.99).
        eps: :math:`\epsilon` (default: 1e-8).
        weight_decay: :math:`\lambda` (default: 0).
        momentum: :math:`\mu` (default: 0).
        centered: normalize by the estimated variance (default: False).
        maximize: ascend instead of descend (default: False).

    Example::

        fusedopt.functional.rmsprop([w], [g], [v], step=1, lr=0.01)
    """
    check_rmsprop(step=step, lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                  centered=centered, maximize=maximize)
    backends.backend_for(params).rmsprop(params, grads, square_avgs, grad_avgs, momentum_buffers, lr=lr, alpha=alpha,
                                         eps=eps, weight_decay=weight_decay, momentum=momentum, centered=centered,
                                         maximize=maximize)
