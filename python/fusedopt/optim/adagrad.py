from __future__ import annotations

from .. import functional as F
from ..functional import _checks
from ..functional.adagrad import check_adagrad
from .optimizer import Optimizer, ParamsT


class Adagrad(Optimizer):
    r"""Adagrad: per-element learning rates from the sum of squared gradients.

    .. math::
        \tilde\eta = \frac{\eta}{1 + (t-1)\delta};\quad g = \pm\nabla + \lambda p;\quad
        s = s + g^2;\quad p = p - \tilde\eta\,\frac{g}{\sqrt{s} + \epsilon}

    Same hyperparameters, defaults and update as ``torch.optim.Adagrad``.

    Args:
        params: arrays, or dicts of param groups.
        lr: η (default: 1e-2).
        lr_decay: δ (default: 0).
        weight_decay: L2 penalty λ (default: 0).
        initial_accumulator_value: where s starts (default: 0).
        eps: ε, added outside the square root (default: 1e-10).
        maximize: ascend instead of descend (default: False).

    Example::

        opt = fusedopt.Adagrad([w], lr=0.01)
        opt.step([gw])
    """

    _functional = staticmethod(F.adagrad)
    _check = staticmethod(check_adagrad)
    _hyperparameters = ("lr", "lr_decay", "weight_decay", "eps", "maximize")

    def __init__(self, params: ParamsT, lr: float = 1e-2, lr_decay: float = 0.0, weight_decay: float = 0.0,
                 initial_accumulator_value: float = 0.0, eps: float = 1e-10, maximize: bool = False) -> None:
        _checks.non_negative("initial_accumulator_value", initial_accumulator_value)
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value, eps=eps,
                                      maximize=maximize))

    def _buffer_names(self, group):
        return ("sum",)

    def _initial_value(self, name, group):
        return group["initial_accumulator_value"]
