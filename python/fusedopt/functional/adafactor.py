"""Adafactor: the spec and the functional step (the math: rules/adafactor.hpp, the walker:
cpu/adafactor.hpp).

Its state is shaped by each param's dimensions (a row and a column factor for a param of 2 or more
dims, a variance for the others), so it has its own spec type and binding instead of the elementwise
rule table: ``ADAFACTOR.buffer_shape(key, shape)`` says which buffers a param has and their shapes."""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

import numpy as np

from .. import backends
from . import _checks
from ._checks import Bounded, EpsilonPair, Flag, NonNegative
from ._spec import Buffer, HyperparameterTable, Hyper

_PACK = struct.Struct("9d").pack


@dataclass
class FactoredSpec(HyperparameterTable):
    """The spec of an optimizer whose state is not shaped like its params (Adafactor): hyperparameters
    as a ``Spec``'s, buffers whose existence and shape follow the param's shape."""

    name: str
    class_name: str
    hypers: Tuple[Hyper, ...]
    buffers: Tuple[Buffer, ...]
    summary: str = ""
    bench: Dict[str, Any] = field(default_factory=dict)
    constraint: Any = None

    def __post_init__(self) -> None:
        self._index_hypers()

    @staticmethod
    def buffer_shape(key: str, shape: Tuple[int, ...]) -> Optional[Tuple[int, ...]]:
        """The shape of state ``key`` for a param of ``shape``, or None when such a param has none
        (torch's rule: factors for 2 or more dims, a variance for 0 or 1)."""
        shape = tuple(shape)
        if len(shape) >= 2:
            return {"row_var": shape[:-1] + (1,), "col_var": shape[:-2] + (1, shape[-1])}.get(key)
        return shape if key == "variance" else None

    @staticmethod
    def packed_scalars(h: Mapping[str, Any], step: int, dtype, grad_scale: float = 1.0) -> bytes:
        """The rule's scalars (rules/adafactor.hpp field order) as float64 bytes, for params of
        ``dtype``; ``grad_scale`` multiplies every gradient (as Spec.packed_scalars)."""
        eps1, eps2 = h["eps"]
        if eps1 is None:
            eps1 = machine_epsilon(dtype)
        lr = h["lr"]
        return _PACK((-1.0 if h["maximize"] else 1.0) * grad_scale, float(step) ** h["beta2_decay"], eps1, eps1 * eps1,
                     1.0 / eps1 if eps1 > 0 else math.inf, 1.0 - lr * h["weight_decay"],
                     min(lr, 1.0 / math.sqrt(step)), eps2, h["d"])


def machine_epsilon(dtype) -> float:
    """The spacing of 1.0 in the params' dtype (torch's eps1=None): bfloat16 (ml_dtypes, or a CuPy uint16
    array of its bits) 2^-7, float16 2^-10, float32 2^-23, float64 2^-52."""
    name = np.dtype(dtype).name
    if name in ("bfloat16", "uint16"):
        return 2.0 ** -7
    return float(np.finfo(dtype).eps)


ADAFACTOR = FactoredSpec(
    "adafactor", "Adafactor",
    hypers=(Hyper("lr", 1e-2, NonNegative(0.05)),
            Hyper("beta2_decay", -0.8, Bounded(hi=0.0, typical=(-1.0, -0.1))),
            Hyper("eps", (None, 1e-3), EpsilonPair()),
            Hyper("d", 1.0, Bounded(lo=1.0, typical=(1.0, 4.0))),
            Hyper("weight_decay", 0.0, NonNegative(0.2)),
            Hyper("maximize", False, Flag())),
    buffers=(Buffer("row_var", "row_vars"), Buffer("col_var", "col_vars"), Buffer("variance", "variances")),
    bench=dict(lr=1e-2),
    summary="Adafactor: a factored second moment (row and column means for matrices), relative step sizes "
            "and update clipping (Shazeer & Stern, 2018).")

_checked: Optional[tuple] = None  # the last hyperparameters found valid


def adafactor(params: Sequence, grads: Sequence, row_vars: Sequence, col_vars: Sequence, variances: Sequence, *,
              step: int, lr: float = 1e-2, beta2_decay: float = -0.8,
              eps: Tuple[Optional[float], float] = (None, 1e-3), d: float = 1.0, weight_decay: float = 0.0,
              maximize: bool = False) -> None:
    r"""Fused Adafactor step over lists of arrays, in place (Shazeer & Stern, 2018, "Adafactor:
    Adaptive Learning Rates with Sublinear Memory Cost"), as ``torch.optim.Adafactor`` computes it.

    .. math::
        \hat\beta_t &= 1 - t^{\tau}, \quad \rho_t = \min(\eta, 1/\sqrt t), \quad
            \alpha_t = \max(\epsilon_2, \mathrm{RMS}(p))\,\rho_t \\
        p &= (1 - \eta\lambda)\, p \\
        R &= \hat\beta_t R + (1 - \hat\beta_t)\, \mathrm{mean}_j\, g^2, \quad
        C = \hat\beta_t C + (1 - \hat\beta_t)\, \mathrm{mean}_i\, g^2, \quad
        \hat V = \frac{R\, C}{\max(\mathrm{mean}_i R, \epsilon_1)} \quad (\ge 2 \text{ dims}) \\
        \hat V &= \hat\beta_t \hat V + (1 - \hat\beta_t)\, g^2 \quad (0 \text{ or } 1 \text{ dims}) \\
        U &= g / \sqrt{\max(\hat V, \epsilon_1^2)}, \quad
        p = p - \frac{\alpha_t}{\max(1, \mathrm{RMS}(U)/d)}\, U

    A param of 2 or more dims is factored over its last two (rows i, columns j; leading dims are a
    batch of matrices); RMS is per tensor. Passes over memory: 3 for a factored param (‖p‖ and the
    row and column sums of g²; then ‖U‖, which needs every row and column mean; then the write), 2
    for the others (V̂, ‖p‖ and ‖U‖; then the write). The sums are taken in tiles fixed by the
    shape, so the result is the same for any thread count and instruction set, and on the GPU
    (CUDA arrays: the same tiles and order, in one cooperative launch whose grid waits for all its
    threads between the phases; python/fusedopt/cuda/adafactor.cu).

    torch takes ``eps1=None`` as the machine epsilon of the first param's dtype for the whole group;
    here it is each call's dtype (all params of one call share one).

    Args:
        params: arrays updated in place (C-contiguous, writable; NumPy or CUDA): float32 or float64, or
            bfloat16 (``ml_dtypes``; on the GPU uint16 bits) or float16, computed in float32, with every
            state array in the params' dtype (as torch keeps it), rounded to nearest when stored.
        grads: one gradient per param, same shape and dtype.
        row_vars: :math:`R` per param: shape ``p.shape[:-1] + (1,)`` for 2 or more dims, else None.
        col_vars: :math:`C` per param: shape ``p.shape[:-2] + (1, p.shape[-1])``, else None.
        variances: :math:`\hat V` for a param of 0 or 1 dims (its shape), else None. All start at zero.
        step: the step being taken :math:`t`, counting from 1.
        lr: :math:`\eta`, the most :math:`\rho_t` can be, and the weight decay's factor (default: 1e-2).
        beta2_decay: :math:`\tau \le 0` (default: -0.8).
        eps: :math:`(\epsilon_1, \epsilon_2)`; :math:`\epsilon_1` None is the dtype's machine epsilon
            (default: (None, 1e-3)).
        d: the clipping threshold :math:`d \ge 1` (default: 1).
        weight_decay: :math:`\lambda`, decoupled (default: 0).
        maximize: ascend instead of descend (default: False).

    Example::

        fusedopt.functional.adafactor([w, b], [gw, gb], [r, None], [c, None], [None, v], step=1)
    """
    global _checked
    if type(step) is not int or step < 1:
        _checks.step(step)
    h = dict(lr=lr, beta2_decay=beta2_decay, eps=eps, d=d, weight_decay=weight_decay, maximize=maximize)
    values = tuple(h.values())
    key = (values, tuple(map(type, values)))  # 1 == 1.0 == True: the types too
    if key != _checked:
        ADAFACTOR.check(h)
        _checked = key
    first = params[0] if isinstance(params, (list, tuple)) and params else None
    dtype = getattr(first, "dtype", None)
    if not isinstance(dtype, np.dtype) or dtype.name not in ("float32", "float64", "bfloat16", "float16", "uint16"):
        dtype = np.dtype(np.float32)  # (the binding refuses such params, naming them)
    backends.for_arrays(params).adafactor_step(params, grads, row_vars, col_vars, variances,
                                               ADAFACTOR.packed_scalars(h, step, dtype))


adafactor.spec = ADAFACTOR  # type: ignore[attr-defined]
