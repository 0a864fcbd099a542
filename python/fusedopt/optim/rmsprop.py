from __future__ import annotations

from .. import functional as F
from ..functional.rmsprop import check_rmsprop
from .optimizer import Optimizer, ParamsT


class RMSprop(Optimizer):
    r"""RMSprop: divide by a running root mean square of the gradients.

    .. math::
        g = \pm\nabla + \lambda p;\quad v = \alpha v + (1-\alpha) g^2;\quad
        \tilde v = v - a^2 \text{ with } a = \alpha a + (1-\alpha) g \text{ (centered)};\\
        b = \mu b + \frac{g}{\sqrt{\tilde v} + \epsilon},\ p = p - \eta b \ (\mu > 0);\quad
        p = p - \eta \frac{g}{\sqrt{\tilde v} + \epsilon} \ (\mu = 0)

    Same hyperparameters, defaults and update as ``torch.optim.RMSprop``.

    .. warning:: Keras ``RMSprop`` defaults to rho=0.9 and puts eps inside the square root.

    Args:
        params: arrays, or dicts of param groups.
        lr: η (default: 1e-2).
        alpha: smoothing constant α (default: 0.99).
        eps: ε (default: 1e-8).
        weight_decay: L2 penalty λ (default: 0).
        momentum: μ (default: 0).
        centered: normalize by the estimated variance (default: False).
        maximize: ascend instead of descend (default: False).

    Example::

        opt = fusedopt.RMSprop([w], lr=0.01, momentum=0.9)
        opt.step([gw])
    """

    _functional = staticmethod(F.rmsprop)
    _check = staticmethod(check_rmsprop)
    _hyperparameters = ("lr", "alpha", "eps", "weight_decay", "momentum", "centered", "maximize")

    def __init__(self, params: ParamsT, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False,
                 maximize: bool = False) -> None:
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                                      centered=centered, maximize=maximize))

    def _buffer_names(self, group):
        return ("square_avg", "grad_avg" if group["centered"] else None,
                "momentum_buffer" if group["momentum"] > 0 else None)
