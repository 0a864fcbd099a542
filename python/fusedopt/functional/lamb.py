"""LAMB: the spec and the functional step (the math: rules/lamb.hpp)."""

from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple

from ._checks import Betas, Flag, NonNegative
from ._spec import Buffer, Hyper, Spec, run

def _scalars(h, step):
    (beta1, beta2), sqrt_bias_correction2 = h["betas"], math.sqrt(1.0 - h["betas"][1] ** step)
    return dict(grad_sign=-1.0 if h["maximize"] else 1.0, beta1=beta1, one_minus_beta1=1.0 - beta1, beta2=beta2,
                one_minus_beta2=1.0 - beta2, direction_scale=sqrt_bias_correction2 / (1.0 - beta1**step),
                eps=h["eps"] * sqrt_bias_correction2, weight_decay=h["weight_decay"], lr=h["lr"])


LAMB = Spec(
    "lamb", "LAMB", rule="lamb",
    hypers=(Hyper("lr", 1e-3, NonNegative(0.5)), Hyper("betas", (0.9, 0.999), Betas()),
            Hyper("eps", 1e-6, NonNegative(1e-3, smallest=1e-8)), Hyper("weight_decay", 0.0, NonNegative(0.2)),
            Hyper("maximize", False, Flag())),
    buffers=(Buffer("exp_avg", "exp_avgs"), Buffer("exp_avg_sq", "exp_avg_sqs")),
    flags=lambda h, step: {},
    scalars=lambda h, step: _scalars(h, step),
    torch_fused=False, bench=dict(lr=1e-3, weight_decay=0.01), norm_pass_traffic=3,
    summary="LAMB: the Adam direction scaled per tensor by the trust ratio ‖p‖/‖u‖ (You et al., 2020; optax.lamb).")


def lamb(params: Sequence, grads: Sequence, exp_avgs: Sequence, exp_avg_sqs: Sequence, *, step: int,
         lr: float = 1e-3, betas: Tuple[float, float] = (0.9, 0.999), eps: float = 1e-6, weight_decay: float = 0.0,
         maximize: bool = False,
         master_params: Optional[Sequence] = None, rounding_seed: Optional[int] = None) -> None:
    r"""Fused LAMB step over lists of arrays, in place (You et al., 2020).

    .. math::
        m &= \beta_1 m + (1 - \beta_1) g, \quad v = \beta_2 v + (1 - \beta_2) g^2 \\
        u &= \frac{m / (1 - \beta_1^t)}{\sqrt{v / (1 - \beta_2^t)} + \epsilon} + \lambda p \\
        r &= \lVert p \rVert / \lVert u \rVert \ \text{per tensor (1 if either norm is 0)} \\
        p &= p - \eta\, r\, u

    Defaults and order are optax's ``lamb`` (``scale_by_adam``, ``add_decayed_weights``,
    ``scale_by_trust_ratio``). Two passes over memory: the first updates m and v and sums p² and u²
    per tensor, the second writes p (u needs the whole tensor's norm first). The sums are taken in
    fixed chunks of 4096 elements and 16 lanes, so the result is the same for any thread count and
    instruction set. On the GPU, two launches with the same chunks and lanes (the CPU's bits; checked on a
    host emulation, not yet run on a GPU).

    .. warning:: apex's and DeepSpeed's FusedLAMB clip the global gradient norm first
       (``max_grad_norm=1.0``), DeepSpeed clamps r to [0.01, 10], and apex skips the ratio for
       params without weight decay unless ``use_nvlamb``: other numbers.

    Args:
        params: arrays updated in place (C-contiguous, writable, float32 or float64).
        grads: one gradient per param, same shape and dtype.
        exp_avgs, exp_avg_sqs: :math:`m` and :math:`v`, one per param (start at zero).
        step: the step being taken :math:`t`, counting from 1.
        lr: :math:`\eta` (default: 1e-3).
        betas: :math:`(\beta_1, \beta_2)` (default: (0.9, 0.999)).
        eps: :math:`\epsilon` (default: 1e-6).
        weight_decay: :math:`\lambda`, added to the direction before the trust ratio (default: 0).
        maximize: ascend instead of descend (default: False).

    ``master_params``, ``rounding_seed`` and 16-bit lists: README, "Mixed precision".

    Example::

        fusedopt.functional.lamb([w], [g], [m], [v], step=1, lr=1e-3, weight_decay=0.01)
    """
    run(LAMB, params, grads, dict(exp_avgs=exp_avgs, exp_avg_sqs=exp_avg_sqs), step,
        dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, maximize=maximize),
        master_params=master_params, rounding_seed=rounding_seed)


lamb.spec = LAMB  # type: ignore[attr-defined]
