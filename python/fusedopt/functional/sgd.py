"""SGD (plain / batch gradient descent, momentum, Nesterov): the spec and the functional step (the
math: rules/sgd.hpp)."""

from __future__ import annotations

from typing import Optional, Sequence

from ._checks import Flag, NonNegative, UnitInterval
from ._spec import REQUIRED, Buffer, Hyper, Spec, run


def _nesterov_needs_momentum(h) -> None:
    if h["nesterov"] and (h["momentum"] <= 0 or h["dampening"] != 0):
        raise ValueError(f"nesterov: needs momentum > 0 and dampening = 0, got momentum={h['momentum']!r}, "
                         f"dampening={h['dampening']!r}")


def _flags(h, step):
    momentum = h["momentum"] != 0
    return {"momentum": momentum, "nesterov": momentum and h["nesterov"], "first_step": momentum and step == 1}


SGD = Spec(
    "sgd", "SGD", rule="sgd",
    hypers=(Hyper("lr", REQUIRED, NonNegative(0.5)), Hyper("momentum", 0.0, NonNegative(0.9)),
            Hyper("dampening", 0.0, UnitInterval(closed=True)), Hyper("weight_decay", 0.0, NonNegative(0.2)),
            Hyper("nesterov", False, Flag()), Hyper("maximize", False, Flag())),
    buffers=(Buffer("momentum_buffer", "momentum_buffers", when="momentum"),),
    flags=_flags,
    scalars=lambda h, step: dict(grad_sign=-1.0 if h["maximize"] else 1.0, weight_decay=h["weight_decay"],
                                 momentum=h["momentum"], one_minus_dampening=1.0 - h["dampening"], lr=h["lr"]),
    constraint=_nesterov_needs_momentum, new_buffer_is_first_step=True, flags_use_step=True, bench=dict(lr=0.01, momentum=0.9),
    summary="Stochastic / batch gradient descent, with optional momentum and Nesterov momentum (torch.optim.SGD).")


def sgd(params: Sequence, grads: Sequence, momentum_buffers: Optional[Sequence] = None, *, step: int, lr: float,
        momentum: float = 0.0, dampening: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False,
        maximize: bool = False,
        master_params: Optional[Sequence] = None, rounding_seed: Optional[int] = None) -> None:
    r"""Fused SGD step (plain, momentum, Nesterov) over lists of arrays, in place.

    .. math::
        g &= \pm\nabla + \lambda p \\
        b &= g \ (t = 1), \quad b = \mu b + (1 - \tau) g \ (t > 1) \\
        g &= g + \mu b \ \text{(nesterov)} \quad\text{or}\quad g = b \\
        p &= p - \eta g

    The textbook momentum :math:`v = \mu v - \eta g,\ p = p + v` is the same for a constant
    :math:`\eta` (:math:`v = -\eta b`); Nesterov's look-ahead form is the same for
    :math:`p = \theta + \mu v`. When :math:`\eta` changes they differ (torch's form is used).

    Args:
        params: arrays updated in place (C-contiguous, writable, float32 or float64).
        grads: one gradient per param, same shape and dtype.
        momentum_buffers: one buffer per param, required when ``momentum != 0``; at ``step == 1``
            their contents are not read (b = g).
        step: the step being taken, counting from 1.
        lr: learning rate :math:`\eta` (no default, as in torch).
        momentum: :math:`\mu` (default: 0).
        dampening: :math:`\tau` (default: 0).
        weight_decay: L2 penalty :math:`\lambda` (default: 0).
        nesterov: Nesterov momentum; needs momentum > 0 and dampening 0 (default: False).
        maximize: ascend instead of descend (default: False).

    ``master_params``, ``rounding_seed`` and 16-bit lists: README, "Mixed precision".

    Example::

        fusedopt.functional.sgd([w], [g], [buf], step=1, lr=0.1, momentum=0.9)
    """
    run(SGD, params, grads, dict(momentum_buffers=momentum_buffers), step,
        dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay, nesterov=nesterov,
             maximize=maximize),
        master_params=master_params, rounding_seed=rounding_seed)


sgd.spec = SGD  # type: ignore[attr-defined]
