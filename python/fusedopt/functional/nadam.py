"""NAdam: the spec and the functional step (the math: rules/nadam.hpp)."""

from __future__ import annotations

import math
import threading
from typing import Dict, Optional, Sequence, Tuple

from ._checks import Betas, Flag, NonNegative
from ._spec import Buffer, Hyper, Spec, run
from .adam import weight_decay_scalars

_products: Dict[Tuple[float, float], Tuple[int, float]] = {}  # (β1, ψ) -> the last (t, Πt) computed
_products_lock = threading.Lock()


def _mu(beta1: float, momentum_decay: float, t: int) -> float:
    return beta1 * (1.0 - 0.5 * 0.96 ** (t * momentum_decay))


def mu_product(beta1: float, momentum_decay: float, step: int) -> float:
    """Πt = μ1·μ2·…·μt, in float64; O(1) when steps come in order (the last product is kept), and
    after a jump (a loaded state) at most the steps until it falls below 1e-30 (every μ < β1 < 1), where
    it stops: 1 − Πt is already 1 in float64, so the update is exact."""
    key = (beta1, momentum_decay)
    with _products_lock:
        last_step, product = _products.get(key, (0, 1.0))
        if step < last_step:
            last_step, product = 0, 1.0
        for t in range(last_step + 1, step + 1):
            if product < 1e-30:  # 1 − Πt is 1 in float64 from about 1e-17 on: carrying it further changes nothing
                break
            product *= _mu(beta1, momentum_decay, t)
        _products[key] = (step, product)
    return product


def _scalars(h, step):
    lr, (beta1, beta2), psi = h["lr"], h["betas"], h["momentum_decay"]
    mu, mu_next = _mu(beta1, psi, step), _mu(beta1, psi, step + 1)
    product = mu_product(beta1, psi, step)
    bias_correction2_sqrt = math.sqrt(1.0 - beta2**step)
    return dict(grad_sign=-1.0 if h["maximize"] else 1.0, **weight_decay_scalars(h, h["decoupled_weight_decay"]),
                one_minus_beta1=1.0 - beta1, beta2=beta2,
                one_minus_beta2=1.0 - beta2,
                grad_coefficient=-lr * (1.0 - mu) / (1.0 - product) * bias_correction2_sqrt,
                avg_coefficient=-lr * mu_next / (1.0 - product * mu_next) * bias_correction2_sqrt,
                eps=h["eps"] * bias_correction2_sqrt)


NADAM = Spec(
    "nadam", "NAdam", rule="nadam",
    hypers=(Hyper("lr", 2e-3, NonNegative(0.5)), Hyper("betas", (0.9, 0.999), Betas()),
            Hyper("eps", 1e-8, NonNegative(1e-3, smallest=1e-8)), Hyper("weight_decay", 0.0, NonNegative(0.2)),
            Hyper("momentum_decay", 4e-3, NonNegative(0.01)), Hyper("decoupled_weight_decay", False, Flag()),
            Hyper("maximize", False, Flag())),
    buffers=(Buffer("exp_avg", "exp_avgs"), Buffer("exp_avg_sq", "exp_avg_sqs")),
    flags=lambda h, step: {}, scalars=_scalars, torch_fused=False, bench=dict(lr=2e-3),
    derived_state=lambda h, step: {"mu_product": mu_product(h["betas"][0], h["momentum_decay"], step)},
    summary="NAdam: Adam with Nesterov momentum and Dozat's momentum schedule (torch.optim.NAdam).")


def nadam(params: Sequence, grads: Sequence, exp_avgs: Sequence, exp_avg_sqs: Sequence, *, step: int,
          lr: float = 2e-3, betas: Tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0,
          momentum_decay: float = 4e-3, decoupled_weight_decay: bool = False, maximize: bool = False,
          master_params: Optional[Sequence] = None, rounding_seed: Optional[int] = None) -> None:
    r"""Fused NAdam step over lists of arrays, in place (Dozat, 2016).

    .. math::
        g &= \pm\nabla + \lambda p \quad (\text{decoupled: } p = p\,(1 - \eta\lambda)) \\
        \mu_t &= \beta_1 (1 - \tfrac12 \cdot 0.96^{t\psi}), \quad \Pi_t = \textstyle\prod_{i \le t} \mu_i \\
        m &= \beta_1 m + (1 - \beta_1) g, \quad v = \beta_2 v + (1 - \beta_2) g^2 \\
        d &= \sqrt{v / (1 - \beta_2^t)} + \epsilon \\
        p &= p - \eta \frac{1 - \mu_t}{1 - \Pi_t} \frac{g}{d} - \eta \frac{\mu_{t+1}}{1 - \Pi_t \mu_{t+1}} \frac{m}{d}

    :math:`\Pi_t` (torch's per-param ``mu_product``) is computed from the step count and the current
    :math:`\beta_1, \psi`, in float64; torch keeps it as a tensor of its default dtype (float32),
    multiplied once per step, so float64 trajectories agree with torch's to about 1e-7 relative in the
    coefficients, and a β1 or ψ changed mid-run is applied to the whole product here.

    Args:
        params: arrays updated in place (C-contiguous, writable, float32 or float64).
        grads: one gradient per param, same shape and dtype.
        exp_avgs, exp_avg_sqs: :math:`m` and :math:`v`, one per param (start at zero).
        step: the step being taken :math:`t`, counting from 1.
        lr: :math:`\eta` (default: 2e-3).
        betas: :math:`(\beta_1, \beta_2)` (default: (0.9, 0.999)).
        eps: :math:`\epsilon` (default: 1e-8).
        weight_decay: :math:`\lambda` (default: 0), an L2 term unless ``decoupled_weight_decay``.
        momentum_decay: :math:`\psi` (default: 4e-3).
        decoupled_weight_decay: multiply p by (1 − ηλ) instead, as AdamW (default: False).
        maximize: ascend instead of descend (default: False).

    ``master_params``, ``rounding_seed`` and 16-bit lists: README, "Mixed precision".

    Example::

        fusedopt.functional.nadam([w], [g], [m], [v], step=1, lr=2e-3)
    """
    run(NADAM, params, grads, dict(exp_avgs=exp_avgs, exp_avg_sqs=exp_avg_sqs), step,
        dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, momentum_decay=momentum_decay,
             decoupled_weight_decay=decoupled_weight_decay, maximize=maximize),
        master_params=master_params, rounding_seed=rounding_seed)


nadam.spec = NADAM  # type: ignore[attr-defined]
