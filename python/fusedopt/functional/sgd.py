from __future__ import annotations

from typing import Optional, Sequence

from .. import backends
from . import _checks


def check_sgd(*, step, lr, momentum, dampening, weight_decay, nesterov, maximize) -> None:
    _checks.step(step)
    _checks.non_negative("lr", lr)
    _checks.non_negative("momentum", momentum)
    _checks.in_unit_interval("dampening", dampening, closed=True)
    _checks.non_negative("weight_decay", weight_decay)
    _checks.flag("nesterov", nesterov)
    _checks.flag("maximize", maximize)
    if nesterov and (momentum <= 0 or dampening != 0):
        raise ValueError(f"nesterov: needs momentum > 0 and dampening = 0, got momentum={momentum!r}, "
                         f"dampening={dampening!r}")


def sgd(params: Sequence, grads: Sequence, momentum_buffers: Optional[Sequence] = None, *, step: int, lr: float,
        momentum: float = 0.0, dampening: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False,
        maximize: bool = False) -> None:
    r"""Fused SGD step (plain, momentum, Nesterov) over lists of arrays, in place.

    .. math::
        g &= \pm\nabla + \lambda p \\
        b &= g \ (t = 1), \quad b = \mu b + (1 - \tau) g \ (t > 1) \\
        g &= g + \mu b \ \text{(nesterov)} \quad\text{or}\quad g = b \\
        p &= p - \eta g

    The textbook momentum :math:`v = \mu v - \eta g,\ p = p + v` is the same for a constant
    :math:`\eta` (:math:`v = -\eta b`); when the lr changes the two differ (torch's form is used).

    Args:
        params: arrays updated in place (C-contiguous, writable, float32 or float64).
        grads: one gradient per param, same shape and dtype.
        momentum_buffers: one buffer per param, required when ``momentum != 0``; at ``step == 1``
            their contents are not read (b = g).
        step: the step being taken, counting from 1.
        lr: learning rate :math:`\eta`.
        momentum: :math:`\mu` (default: 0).
        dampening: :math:`\tau` (default: 0).
        weight_decay: L2 penalty :math:`\lambda` (default: 0).
        nesterov: Nesterov momentum (default: False).
        maximize: ascend instead of descend (default: False).

    Example::

        fusedopt.functional.sgd([w], [g], [buf], step=1, lr=0.1, momentum=0.9)
    """
    check_sgd(step=step, lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
              nesterov=nesterov, maximize=maximize)
    backends.backend_for(params).sgd(params, grads, momentum_buffers, lr=lr, momentum=momentum, dampening=dampening,
                                     weight_decay=weight_decay, nesterov=nesterov, maximize=maximize,
                                     first_step=step == 1)
