"""Lion: the spec and the functional step (the math: rules/lion.hpp)."""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

from ._checks import Betas, Flag, NonNegative
from ._spec import Buffer, Hyper, Spec, run

LION = Spec(
    "lion", "Lion", rule="lion",
    hypers=(Hyper("lr", 1e-4, NonNegative(0.05)), Hyper("betas", (0.9, 0.99), Betas()),
            Hyper("weight_decay", 0.0, NonNegative(0.2)), Hyper("maximize", False, Flag())),
    buffers=(Buffer("exp_avg", "exp_avgs"),),
    flags=lambda h, step: {},
    scalars=lambda h, step: dict(grad_sign=-1.0 if h["maximize"] else 1.0, decay=1.0 - h["lr"] * h["weight_decay"],
                                 lr=h["lr"], beta1=h["betas"][0], one_minus_beta1=1.0 - h["betas"][0],
                                 beta2=h["betas"][1], one_minus_beta2=1.0 - h["betas"][1]),
    torch_fused=False, bench=dict(lr=1e-4),
    summary="Lion: the sign of an interpolated momentum, with decoupled weight decay (Chen et al., 2023).")


def lion(params: Sequence, grads: Sequence, exp_avgs: Sequence, *, step: int, lr: float = 1e-4,
         betas: Tuple[float, float] = (0.9, 0.99), weight_decay: float = 0.0, maximize: bool = False,
         master_params: Optional[Sequence] = None, rounding_seed: Optional[int] = None) -> None:
    r"""Fused Lion step over lists of arrays, in place (Chen et al., 2023, "Symbolic Discovery of
    Optimization Algorithms").

    .. math::
        c &= \beta_1 m + (1 - \beta_1) g \\
        p &= p\,(1 - \eta\lambda) - \eta\, \mathrm{sign}(c) \\
        m &= \beta_2 m + (1 - \beta_2) g

    Defaults are the authors' PyTorch implementation's (google/automl ``lion_pytorch.py``: lr=1e-4,
    betas=(0.9, 0.99), weight_decay=0). torch.optim has no Lion.

    .. warning:: optax's ``lion`` has the same update with ``b1=0.9, b2=0.99`` and adds its
       ``weight_decay`` (default 1e-3, here 0) to the update before scaling by the learning rate,
       which is the same decoupled decay. Lion wants a learning rate 3-10x smaller than AdamW's and
       a weight decay 3-10x larger.

    Args:
        params: arrays updated in place (C-contiguous, writable, float32 or float64).
        grads: one gradient per param, same shape and dtype.
        exp_avgs: :math:`m`, one per param (start at zero).
        step: the step being taken, counting from 1 (counted, not read).
        lr: :math:`\eta` (default: 1e-4).
        betas: :math:`(\beta_1, \beta_2)` (default: (0.9, 0.99)).
        weight_decay: decoupled :math:`\lambda` (default: 0).
        maximize: ascend instead of descend (default: False).

    ``master_params``, ``rounding_seed`` and 16-bit lists: README, "Mixed precision".

    Example::

        fusedopt.functional.lion([w], [g], [m], step=1, lr=1e-4)
    """
    run(LION, params, grads, dict(exp_avgs=exp_avgs), step,
        dict(lr=lr, betas=betas, weight_decay=weight_decay, maximize=maximize),
        master_params=master_params, rounding_seed=rounding_seed)


lion.spec = LION  # type: ignore[attr-defined]
