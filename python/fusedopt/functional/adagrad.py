"""Adagrad: the spec and the functional step (the math: rules/adagrad.hpp)."""

from __future__ import annotations

from typing import Optional, Sequence

from ._checks import Flag, NonNegative
from ._spec import Buffer, Hyper, Spec, run

ADAGRAD = Spec(
    "adagrad", "Adagrad", rule="adagrad",
    hypers=(Hyper("lr", 1e-2, NonNegative(0.5)), Hyper("lr_decay", 0.0, NonNegative(0.5)),
            Hyper("weight_decay", 0.0, NonNegative(0.2)),
            Hyper("initial_accumulator_value", 0.0, NonNegative(1.0), kernel=False),
            Hyper("eps", 1e-10, NonNegative(1e-3, smallest=1e-10)), Hyper("maximize", False, Flag())),
    buffers=(Buffer("sum", "state_sums", initial="initial_accumulator_value"),),
    flags=lambda h, step: {},
    scalars=lambda h, step: dict(grad_sign=-1.0 if h["maximize"] else 1.0, weight_decay=h["weight_decay"],
                                 clr=h["lr"] / (1.0 + (step - 1) * h["lr_decay"]), eps=h["eps"]),
    bench=dict(lr=0.01), summary="Adagrad: per-element learning rates from the sum of squared gradients (torch.optim.Adagrad).")


def adagrad(params: Sequence, grads: Sequence, state_sums: Sequence, *, step: int, lr: float = 1e-2,
            lr_decay: float = 0.0, weight_decay: float = 0.0, eps: float = 1e-10, maximize: bool = False,
            master_params: Optional[Sequence] = None, rounding_seed: Optional[int] = None) -> None:
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
            ``initial_accumulator_value``, the optimizer class's argument).
        step: the step being taken :math:`t`, counting from 1.
        lr: :math:`\eta` (default: 1e-2).
        lr_decay: :math:`\delta` (default: 0).
        weight_decay: :math:`\lambda` (default: 0).
        eps: :math:`\epsilon`, added outside the square root (default: 1e-10).
        maximize: ascend instead of descend (default: False).

    ``master_params``, ``rounding_seed`` and 16-bit lists: README, "Mixed precision".

    Example::

        fusedopt.functional.adagrad([w], [g], [s], step=1, lr=0.01)
    """
    run(ADAGRAD, params, grads, dict(state_sums=state_sums), step,
        dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay, eps=eps, maximize=maximize),
        master_params=master_params, rounding_seed=rounding_seed)


adagrad.spec = ADAGRAD  # type: ignore[attr-defined]
