from __future__ import annotations

from typing import Sequence

from .. import backends
from . import _checks


def check_adagrad(*, step, lr, lr_decay, weight_decay, eps, maximize) -> None:
    _checks.step(step)
    _checks.non_negative("lr", lr)
    _checks.non_negative("lr_decay", lr_decay)
    _checks.non_negative("weight_decay", weight_decay)
    _checks.non_negative("eps", eps)
    _checks.flag("maximize", maximize)


def adagrad(params: Sequence, grads: Sequence, state_sums: Sequence, *, step: int, lr: float = 1e-2,
            lr_decay: float = 0.0, weight_decay: float = 0.0, eps: float = 1e-10, maximize: bool = False) -> None:
    r"""Fused Adagrad step over lists of arrays, in place.

    .. math::
        \tilde\eta &= \eta / (1 + (t - 1)\,\delta) \\
        g &= \pm\nabla + \lambda p \\
        s &= s + g^2 \\
        p &= p - \tilde\eta\, g / (\sqrt{s} + \epsilon)

    Args:
        params: arrays updated in place (C-contiguous, writable, float32 or float64).
        grads: one gradient per param, same shape and dtype.
        state_sums: the accumulators :math:`s`, one per param (start them at
            ``initial_accumulator_value``).
        step: the step being taken :math:`t`, counting from 1.
        lr: :math:`\eta` (default: 1e-2).
        lr_decay: :math:`\delta` (default: 0).
        weight_decay: :math:`\lambda` (default: 0).
        eps: :math:`\epsilon`, added outside the square root (default: 1e-10).
        maximize: ascend instead of descend (default: False).

    Example::

        fusedopt.functional.adagrad([w], [g], [s], step=1, lr=0.01)
    """
    check_adagrad(step=step, lr=lr, lr_decay=lr_decay, weight_decay=weight_decay, eps=eps, maximize=maximize)
    backends.backend_for(params).adagrad(params, grads, state_sums, step=step, lr=lr, lr_decay=lr_decay,
                                         weight_decay=weight_decay, eps=eps, maximize=maximize)
