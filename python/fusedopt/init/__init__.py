"""Weight initializers with ``torch.nn.init`` semantics, fast and reproducible.

In-place forms end with ``_`` and return the array; plain forms take a shape and ``dtype`` and
return a new array. Random ones take ``generator=`` (a :class:`Generator`) or ``seed=``; without
either they use the default generator (``fusedopt.manual_seed``). The layout ``"out_in"`` (torch,
default) reads (out, in, *kernel); ``"in_out"`` reads (in, out) and (*kernel, in, out) as NumPy
``x @ W``, JAX and Keras.

bfloat16: arrays of ``ml_dtypes.bfloat16`` are filled in place; the plain forms return that type
when ml_dtypes is installed, and otherwise a uint16 array holding the bfloat16 bit patterns.
"""

from __future__ import annotations

import functools

import numpy as np

from . import _fill
from .fans import calculate_gain, fans
from .generator import Generator, default_generator, manual_seed
from .initializers import (constant_, eye_, kaiming_normal_, kaiming_uniform_, lecun_normal_, lecun_uniform_,
                           normal_, ones_, orthogonal_, trunc_normal_, uniform_, xavier_normal_, xavier_uniform_,
                           zeros_)

glorot_uniform_, glorot_normal_ = xavier_uniform_, xavier_normal_
he_uniform_, he_normal_ = kaiming_uniform_, kaiming_normal_


def _empty(shape, dtype):
    if isinstance(dtype, str) and dtype == "bfloat16":
        try:
            import ml_dtypes
        except ImportError:
            return np.empty(shape, np.uint16).view(_fill.BFloat16Bits)
        return np.empty(shape, ml_dtypes.bfloat16)
    return np.empty(shape, dtype)


def _plain(fill_):
    @functools.wraps(fill_)
    def make(shape, *args, dtype=np.float32, **kwargs):
        out = fill_(_empty(shape, dtype), *args, **kwargs)
        return out.view(np.ndarray) if isinstance(out, _fill.BFloat16Bits) else out

    make.__name__ = make.__qualname__ = fill_.__name__.rstrip("_")
    make.__doc__ = f"New array of ``shape`` and ``dtype`` (default float32; \"bfloat16\" too) filled by {fill_.__name__}."
    return make


zeros, ones, constant = _plain(zeros_), _plain(ones_), _plain(constant_)
uniform, normal, trunc_normal = _plain(uniform_), _plain(normal_), _plain(trunc_normal_)
xavier_uniform, xavier_normal = _plain(xavier_uniform_), _plain(xavier_normal_)
kaiming_uniform, kaiming_normal = _plain(kaiming_uniform_), _plain(kaiming_normal_)
lecun_uniform, lecun_normal = _plain(lecun_uniform_), _plain(lecun_normal_)
orthogonal, eye = _plain(orthogonal_), _plain(eye_)
glorot_uniform, glorot_normal, he_uniform, he_normal = xavier_uniform, xavier_normal, kaiming_uniform, kaiming_normal

__all__ = [
    "Generator", "default_generator", "manual_seed", "calculate_gain", "fans",
    "zeros_", "ones_", "constant_", "uniform_", "normal_", "trunc_normal_", "xavier_uniform_", "xavier_normal_",
    "kaiming_uniform_", "kaiming_normal_", "lecun_uniform_", "lecun_normal_", "orthogonal_", "eye_",
    "glorot_uniform_", "glorot_normal_", "he_uniform_", "he_normal_",
    "zeros", "ones", "constant", "uniform", "normal", "trunc_normal", "xavier_uniform", "xavier_normal",
    "kaiming_uniform", "kaiming_normal", "lecun_uniform", "lecun_normal", "orthogonal", "eye",
    "glorot_uniform", "glorot_normal", "he_uniform", "he_normal",
]
