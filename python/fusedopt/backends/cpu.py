"""CPU backend: the C++ kernels of fusedopt._core (NumPy arrays, float32/float64)."""

from .._core import adagrad, adam, check_lists, rmsprop, sgd

__all__ = ["check_lists", "sgd", "adagrad", "rmsprop", "adam"]
