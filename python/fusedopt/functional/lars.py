"""LARS: the spec and the functional step (the math: rules/lars.hpp)."""

from __future__ import annotations

from typing import Optional, Sequence

from ._checks import Flag, NonNegative
from ._spec import REQUIRED, Buffer, Hyper, Spec, run

LARS = Spec(
    "lars", "LARS", rule="lars",
    hypers=(Hyper("lr", REQUIRED, NonNegative(0.5)), Hyper("momentum", 0.9, NonNegative(0.9)),
            Hyper("weight_decay", 0.0, NonNegative(0.2)), Hyper("trust_coefficient", 1e-3, NonNegative(1.0)),
            Hyper("eps", 0.0, NonNegative(1e-3)), Hyper("nesterov", False, Flag()),
            Hyper("trust_ratio", True, Flag()), Hyper("maximize", False, Flag())),
    buffers=(Buffer("momentum_buffer", "momentum_buffers"),),
    flags=lambda h, step: {"trust_ratio": h["trust_ratio"], "nesterov": h["nesterov"]},
    scalars=lambda h, step: dict(grad_sign=-1.0 if h["maximize"] else 1.0, weight_decay=h["weight_decay"],
                                 trust_coefficient=h["trust_coefficient"], eps=h["eps"], momentum=h["momentum"],
                                 lr=h["lr"]),
    torch_fused=False, bench=dict(lr=1.0, weight_decay=1e-4),
    norm_pass_traffic=2,  # the norm pass reads p and g; then the update as SGD with momentum
    summary="LARS: SGD with momentum and a per-tensor trust ratio η‖p‖/‖g + λp‖ (You et al., 2017; optax.lars).")


def lars(params: Sequence, grads: Sequence, momentum_buffers: Sequence, *, step: int, lr: float,
         momentum: float = 0.9, weight_decay: float = 0.0, trust_coefficient: float = 1e-3, eps: float = 0.0,
         nesterov: bool = False, trust_ratio: bool = True, maximize: bool = False,
         master_params: Optional[Sequence] = None, rounding_seed: Optional[int] = None) -> None:
    r"""Fused LARS step over lists of arrays, in place (You, Gitman & Ginsburg, 2017).

    .. math::
        u &= \pm\nabla + \lambda p \\
        r &= \eta_c \lVert p \rVert / (\lVert u \rVert + \epsilon) \ \text{per tensor (1 if either norm is 0)} \\
        b &= \mu b - \eta\, r\, u \quad (b \text{ starts at } 0) \\
        p &= p + b \quad \text{(nesterov: } p + \mu b - \eta\, r\, u)

    Defaults and order are optax's ``lars`` (``add_decayed_weights``, ``scale_by_trust_ratio``,
    ``scale_by_learning_rate``, ``trace``). ``trust_ratio=False`` — set in the param group of biases
    and normalization weights, which LARS usually excludes — makes r = 1 (SGD with momentum, one pass);
    otherwise two passes: ‖p‖ and ‖u‖ per tensor, then the update, the sums taken in fixed chunks and
    lanes (the same result for any thread count and instruction set). On the GPU, two launches with the
    same chunks and lanes (the CPU's bits; checked on a host emulation, not yet run on a GPU).

    .. warning:: the paper and NVIDIA's apex/DALI recipes fold lr into the momentum differently
       (``b = μb + r·lr·u``, ``p -= b``: the same for a constant lr); torch.optim has no LARS.

    Args:
        params: arrays updated in place (C-contiguous, writable, float32 or float64).
        grads: one gradient per param, same shape and dtype.
        momentum_buffers: :math:`b`, one per param (start at zero).
        step: the step being taken, counting from 1 (counted, not read).
        lr: :math:`\eta` (required).
        momentum: :math:`\mu` (default: 0.9).
        weight_decay: :math:`\lambda` (default: 0).
        trust_coefficient: :math:`\eta_c` (default: 1e-3).
        eps: :math:`\epsilon` (default: 0).
        nesterov: Nesterov momentum (default: False).
        trust_ratio: scale by the trust ratio; False for excluded params (default: True).
        maximize: ascend instead of descend (default: False).

    ``master_params``, ``rounding_seed`` and 16-bit lists: README, "Mixed precision".

    Example::

        fusedopt.functional.lars([w], [g], [b], step=1, lr=1.0, weight_decay=1e-4)
    """
    run(LARS, params, grads, dict(momentum_buffers=momentum_buffers), step,
        dict(lr=lr, momentum=momentum, weight_decay=weight_decay, trust_coefficient=trust_coefficient, eps=eps,
             nesterov=nesterov, trust_ratio=trust_ratio, maximize=maximize),
        master_params=master_params, rounding_seed=rounding_seed)


lars.spec = LARS  # type: ignore[attr-defined]
