"""RMSprop: the spec and the functional step (the math: rules/rmsprop.hpp)."""

from __future__ import annotations

from typing import Optional, Sequence

from ._checks import Flag, NonNegative, UnitInterval
from ._spec import Buffer, Hyper, Spec, run

RMSPROP = Spec(
    "rmsprop", "RMSprop", rule="rmsprop",
    # alpha is kept away from 0 in random tests: the centered ṽ = v − a² cancels like 1/α at the first
    # step (ṽ = α(1−α)g²), where the problem itself is ill-conditioned and no two roundings agree
    hypers=(Hyper("lr", 1e-2, NonNegative(0.5)), Hyper("alpha", 0.99, UnitInterval(closed=True, smallest=0.1)),
            Hyper("eps", 1e-8, NonNegative(1e-3, smallest=1e-8)), Hyper("weight_decay", 0.0, NonNegative(0.2)),
            Hyper("momentum", 0.0, NonNegative(0.9)), Hyper("centered", False, Flag()), Hyper("maximize", False, Flag())),
    buffers=(Buffer("square_avg", "square_avgs"), Buffer("grad_avg", "grad_avgs", when="centered"),
             Buffer("momentum_buffer", "momentum_buffers", when="momentum")),
    flags=lambda h, step: {"centered": h["centered"], "momentum": h["momentum"] > 0},
    scalars=lambda h, step: dict(grad_sign=-1.0 if h["maximize"] else 1.0, weight_decay=h["weight_decay"],
                                 alpha=h["alpha"], one_minus_alpha=1.0 - h["alpha"], eps=h["eps"],
                                 momentum=h["momentum"], lr=h["lr"]),
    torch_fused=False, bench=dict(lr=0.01),
    summary="RMSprop: divide by a running root mean square of the gradients (torch.optim.RMSprop).")


def rmsprop(params: Sequence, grads: Sequence, square_avgs: Sequence, grad_avgs: Optional[Sequence] = None,
            momentum_buffers: Optional[Sequence] = None, *, step: int, lr: float = 1e-2, alpha: float = 0.99,
            eps: float = 1e-8, weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False,
            maximize: bool = False,
            master_params: Optional[Sequence] = None, rounding_seed: Optional[int] = None) -> None:
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

    ``master_params``, ``rounding_seed`` and 16-bit lists: README, "Mixed precision".

    Example::

        fusedopt.functional.rmsprop([w], [g], [v], step=1, lr=0.01)
    """
    run(RMSPROP, params, grads, dict(square_avgs=square_avgs, grad_avgs=grad_avgs, momentum_buffers=momentum_buffers),
        step, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum, centered=centered,
                   maximize=maximize),
        master_params=master_params, rounding_seed=rounding_seed)


rmsprop.spec = RMSPROP  # type: ignore[attr-defined]
