from __future__ import annotations

from .. import functional as F
from ..functional.sgd import check_sgd
from .optimizer import Optimizer, ParamsT


class SGD(Optimizer):
    r"""Stochastic / batch gradient descent, with optional momentum and Nesterov momentum.

    .. math::
        g = \pm\nabla + \lambda p;\quad b = \mu b + (1-\tau) g\ (b = g \text{ at first});\quad
        g = g + \mu b \text{ (nesterov) or } b;\quad p = p - \eta g

    Same hyperparameters, defaults and update as ``torch.optim.SGD``. The textbook momentum
    ``v = μv − lr·g; p += v`` gives the same iterates for a constant lr (v = −lr·b); Nesterov's
    look-ahead form gives them for p = θ + μv. When lr changes they differ: this follows torch.

    Args:
        params: arrays, or dicts of param groups (``{"params": [...], "lr": ...}``).
        lr: learning rate (no default, as in torch).
        momentum: μ (default: 0).
        dampening: τ (default: 0).
        weight_decay: L2 penalty λ (default: 0).
        nesterov: Nesterov momentum; needs momentum > 0 and dampening 0 (default: False).
        maximize: ascend instead of descend (default: False).

    Example::

        opt = fusedopt.SGD([w, b], lr=0.1, momentum=0.9)
        opt.step([gw, gb])
    """

    _functional = staticmethod(F.sgd)
    _check = staticmethod(check_sgd)
    _hyperparameters = ("lr", "momentum", "dampening", "weight_decay", "nesterov", "maximize")

    def __init__(self, params: ParamsT, lr: float, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False, maximize: bool = False) -> None:
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                                      nesterov=nesterov, maximize=maximize))

    def _buffer_names(self, group):
        return ("momentum_buffer" if group["momentum"] != 0 else None,)

    def _step_for(self, state, created_buffers):
        # A new momentum buffer starts at g (torch: buffer None -> clone of g), whatever the step.
        return 1 if created_buffers else state["step"] + 1
