"""Stateless fused optimizer steps: lists of arrays + scalars -> in-place update (DESIGN.md §1).

Every function validates all of its arguments before it writes anything, then updates every
tensor of the lists in one fused call. This module is also the registration list of the Python
side: each function imported here carries its optimizer's spec (``fusedopt.functional.adam.spec``),
from which fusedopt.optim makes the class, and the tests and benchmarks their tables.
"""

from .adadelta import adadelta
from ._scaling import grad_norm
from .adafactor import adafactor
from .asgd import asgd
from .adagrad import adagrad
from .adam import adam, adamw
from .adamax import adamax
from .lamb import lamb
from .lars import lars
from .lion import lion
from .nadam import nadam
from .radam import radam
from .rmsprop import rmsprop
from .rprop import rprop
from .sgd import sgd

# The elementwise specs (rule table, Plan); Adafactor's state is shaped by its params' dims, so it has
# its own spec type and binding (adafactor.py) and is not among them.
SPECS = tuple(f.spec for f in list(globals().values()) if callable(f) and hasattr(f, "spec")
              and f is not adafactor)

__all__ = [spec.name for spec in SPECS] + ["adafactor", "grad_norm"]
