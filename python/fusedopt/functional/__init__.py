"""Stateless fused optimizer steps: lists of arrays + scalars -> in-place update (DESIGN.md §1).

Every function validates all of its arguments before it writes anything, then updates every
tensor of the lists in one fused call.
"""

from .adagrad import adagrad
from .adam import adam, adamw
from .rmsprop import rmsprop
from .sgd import sgd

__all__ = ["sgd", "adagrad", "rmsprop", "adam", "adamw"]
