"""Optimizers with ``torch.optim`` hyperparameters, defaults and equations: one class per spec of
fusedopt.functional (``fusedopt.Adam``, ``fusedopt.SGD``, ...), made by :func:`optimizer_class`, and
``fusedopt.Adafactor``, whose state is not shaped like its params (optim/adafactor.py)."""

from .. import functional as _functional
from .adafactor import Adafactor
from .optimizer import Optimizer, ParamsT, ScaledStep, optimizer_class

for _spec in _functional.SPECS:
    globals()[_spec.class_name] = optimizer_class(_spec)

__all__ = ["Optimizer", "ScaledStep", "optimizer_class"] + [_spec.class_name for _spec in _functional.SPECS] + ["Adafactor"]
