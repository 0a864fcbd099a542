from __future__ import annotations

from typing import Tuple

from .. import functional as F
from ..functional.adam import check_adam
from .optimizer import Optimizer, ParamsT


class Adam(Optimizer):
    r"""Adam, with optional AMSGrad.

    .. math::
        g = \pm\nabla + \lambda p;\quad m = \beta_1 m + (1-\beta_1) g;\quad v = \beta_2 v + (1-\beta_2) g^2;\\
        p = p - \frac{\eta}{1-\beta_1^t}\cdot\frac{m}{\sqrt{\hat v}/\sqrt{1-\beta_2^t} + \epsilon},
        \quad \hat v = \max(\hat v, v) \text{ (amsgrad) or } v

    Same hyperparameters, defaults and update as ``torch.optim.Adam`` (bias correction always on).

    .. warning:: ``weight_decay`` here is an L2 term added to the gradient; for decoupled weight
       decay use :class:`AdamW`. Keras's epsilon is not bias-corrected; torch's and optax's (and
       this one's) is.

    Args:
        params: arrays, or dicts of param groups.
        lr: η (default: 1e-3).
        betas: (β1, β2) (default: (0.9, 0.999)).
        eps: ε (default: 1e-8).
        weight_decay: L2 penalty λ (default: 0).
        amsgrad: use the running maximum of v (default: False).
        maximize: ascend instead of descend (default: False).

    Example::

        opt = fusedopt.Adam([w, b], lr=1e-3)
        opt.step([gw, gb])
    """

    _functional = staticmethod(F.adam)
    _check = staticmethod(check_adam)
    _hyperparameters = ("lr", "betas", "eps", "weight_decay", "amsgrad", "maximize")

    def __init__(self, params: ParamsT, lr: float = 1e-3, betas: Tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, amsgrad: bool = False, maximize: bool = False) -> None:
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                                      maximize=maximize))

    def _buffer_names(self, group):
        return ("exp_avg", "exp_avg_sq", "max_exp_avg_sq" if group["amsgrad"] else None)


class AdamW(Adam):
    r"""AdamW: Adam with decoupled weight decay.

    .. math::
        p = p\,(1 - \eta\lambda), \text{ then the Adam update with no } \lambda p \text{ in } g

    Same hyperparameters, defaults (``weight_decay=1e-2``) and update as ``torch.optim.AdamW``.

    Example::

        opt = fusedopt.AdamW([w], lr=1e-3, weight_decay=1e-2)
        opt.step([gw])
    """

    _functional = staticmethod(F.adamw)

    def __init__(self, params: ParamsT, lr: float = 1e-3, betas: Tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, amsgrad: bool = False, maximize: bool = False) -> None:
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                         maximize=maximize)
