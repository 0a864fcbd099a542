"""Loss scaling and gradient clipping without passes of their own: the gradients' global norm and
finiteness in one read-only pass (``grad_norm``), and a factor the optimizers apply to every gradient
inside their fused step (``Optimizer.step(grads, grad_scale=...)``, ``Optimizer.scaled_step``)."""

from __future__ import annotations

import math
import re
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

from .. import backends
from . import _checks


def check_grad_scale(value, name: str = "grad_scale") -> None:
    """A finite value > 0, or TypeError/ValueError naming it."""
    v = _checks._real(name, value)
    if not 0.0 < v < math.inf:
        raise ValueError(f"{name}: expected a finite value > 0, got {value!r}")


def grad_norm_squared(grads: Sequence) -> Tuple[float, bool]:
    """(sum of the squares of every element, all finite) over the gradients that are not None, in
    float64: one read-only pass per device kind and dtype (CPU first, float32 first), the same bits
    for any thread count and instruction set, and on the GPU."""
    by_dtype: Dict[Tuple[bool, str], Tuple[List, List[int]]] = {}
    for i, g in enumerate(grads):
        if g is None:
            continue
        arrays, indices = by_dtype.setdefault((backends.is_cuda_array(g), str(getattr(g, "dtype", ""))), ([], []))
        arrays.append(g)
        indices.append(i)
    squares, finite = 0.0, True
    for key in sorted(by_dtype, key=lambda k: (k[0], k[1] != "float32")):  # CPU first, float32 first
        arrays, indices = by_dtype[key]
        try:
            part, part_finite = backends.for_arrays(arrays).grad_norm(arrays)
        except (TypeError, ValueError) as e:  # named by the position in ``grads``
            raise type(e)(re.sub(r"grads\[(\d+)\]", lambda m: f"grads[{indices[int(m.group(1))]}]", str(e))) from None
        squares += part
        finite = finite and part_finite
    return squares, finite


def grad_norm(grads: Sequence) -> Tuple[float, bool]:
    """The global L2 norm of the gradients (None entries skipped) and whether all are finite, in one
    read-only pass, summed in float64 in fixed chunks (the same result for any thread count)::

        norm, finite = fusedopt.functional.grad_norm([gw, gb])
    """
    squares, finite = grad_norm_squared(grads)
    return math.sqrt(squares), finite


class ScaledStep(NamedTuple):
    """What a ``scaled_step`` did: ``skipped`` (an inf or NaN gradient: nothing changed), the global
    L2 norm of the unscaled gradients, and the clip factor applied (1 when none)."""

    skipped: bool
    total_norm: float
    clip_coef: float


def scaled_step_factor(grads: Sequence, loss_scale: float, max_norm: Optional[float]) -> Tuple[ScaledStep, float]:
    """The report of a scaled step over ``grads`` (gradients of a loss multiplied by ``loss_scale``)
    and the factor its fused step applies to every gradient: 1/loss_scale times
    ``torch.nn.utils.clip_grad_norm_``'s min(1, max_norm/(norm + 1e-6)). Skipped (no step) when any
    gradient is inf or NaN, as ``torch.amp.GradScaler`` skips it."""
    check_grad_scale(loss_scale, "loss_scale")
    if max_norm is not None:
        check_grad_scale(max_norm, "max_norm")
    squares, finite = grad_norm_squared(grads)
    total_norm = math.sqrt(squares) / loss_scale
    if not finite:
        return ScaledStep(True, total_norm if math.isnan(squares) else math.inf, 1.0), 1.0
    clip = 1.0 if max_norm is None else min(1.0, max_norm / (total_norm + 1e-6))
    return ScaledStep(False, total_norm, clip), clip / loss_scale
