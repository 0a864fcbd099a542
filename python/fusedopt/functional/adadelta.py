"""Adadelta: the spec and the functional step (the math: rules/adadelta.hpp)."""

from __future__ import annotations

from typing import Optional, Sequence

from ._checks import Flag, NonNegative, UnitInterval
from ._spec import Buffer, Hyper, Spec, run

ADADELTA = Spec(
    "adadelta", "Adadelta", rule="adadelta",
    hypers=(Hyper("lr", 1.0, NonNegative(1.0)), Hyper("rho", 0.9, UnitInterval(closed=True)),
            Hyper("eps", 1e-6, NonNegative(1e-3, smallest=1e-8)), Hyper("weight_decay", 0.0, NonNegative(0.2)),
            Hyper("maximize", False, Flag())),
    buffers=(Buffer("square_avg", "square_avgs"), Buffer("acc_delta", "acc_deltas")),
    flags=lambda h, step: {},
    scalars=lambda h, step: dict(grad_sign=-1.0 if h["maximize"] else 1.0, weight_decay=h["weight_decay"],
                                 rho=h["rho"], one_minus_rho=1.0 - h["rho"], eps=h["eps"], lr=h["lr"]),
    torch_fused=False, bench=dict(lr=1.0),
    summary="Adadelta: steps in the units of the params, from running means of g² and of the steps (torch.optim.Adadelta).")


def adadelta(params: Sequence, grads: Sequence, square_avgs: Sequence, acc_deltas: Sequence, *, step: int,
             lr: float = 1.0, rho: float = 0.9, eps: float = 1e-6, weight_decay: float = 0.0,
             maximize: bool = False,
             master_params: Optional[Sequence] = None, rounding_seed: Optional[int] = None) -> None:
    r"""Fused Adadelta step over lists of arrays, in place (Zeiler, 2012).

    .. math::
        g &= \pm\nabla + \lambda p \\
        v &= \rho v + (1 - \rho) g^2 \\
        \Delta &= \frac{\sqrt{u + \epsilon}}{\sqrt{v + \epsilon}}\, g \\
        u &= \rho u + (1 - \rho) \Delta^2 \\
        p &= p - \eta \Delta

    ``step`` is counted (torch keeps it) but the update does not read it.

    Args:
        params: arrays updated in place (C-contiguous, writable, float32 or float64).
        grads: one gradient per param, same shape and dtype.
        square_avgs, acc_deltas: :math:`v` and :math:`u`, one per param (start at zero).
        step: the step being taken, counting from 1.
        lr: :math:`\eta`, a factor on Δ (default: 1.0).
        rho: :math:`\rho` (default: 0.9).
        eps: :math:`\epsilon` (default: 1e-6).
        weight_decay: L2 penalty :math:`\lambda` added to the gradient (default: 0).
        maximize: ascend instead of descend (default: False).

    ``master_params``, ``rounding_seed`` and 16-bit lists: README, "Mixed precision".

    Example::

        fusedopt.functional.adadelta([w], [g], [v], [u], step=1)
    """
    run(ADADELTA, params, grads, dict(square_avgs=square_avgs, acc_deltas=acc_deltas), step,
        dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize),
        master_params=master_params, rounding_seed=rounding_seed)


adadelta.spec = ADADELTA  # type: ignore[attr-defined]
