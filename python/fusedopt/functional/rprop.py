"""Rprop: the spec and the functional step (the math: rules/rprop.hpp)."""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

from ._checks import Etas, Flag, NonNegative, StepSizes
from ._spec import Buffer, Hyper, Spec, run

RPROP = Spec(
    "rprop", "Rprop", rule="rprop",
    hypers=(Hyper("lr", 1e-2, NonNegative(0.5), kernel=False), Hyper("etas", (0.5, 1.2), Etas()),
            Hyper("step_sizes", (1e-6, 50.0), StepSizes()), Hyper("maximize", False, Flag())),
    buffers=(Buffer("prev", "prevs"), Buffer("step_size", "step_size_list", initial="lr")),
    flags=lambda h, step: {},
    scalars=lambda h, step: dict(grad_sign=-1.0 if h["maximize"] else 1.0, etaminus=h["etas"][0],
                                 etaplus=h["etas"][1], step_size_min=h["step_sizes"][0],
                                 step_size_max=h["step_sizes"][1]),
    torch_fused=False, bench=dict(lr=1e-2),
    summary="Rprop: per-element step sizes grown while the gradient keeps its sign, shrunk when it flips (torch.optim.Rprop).")


def rprop(params: Sequence, grads: Sequence, prevs: Sequence, step_size_list: Sequence, *, step: int,
          etas: Tuple[float, float] = (0.5, 1.2), step_sizes: Tuple[float, float] = (1e-6, 50.0),
          maximize: bool = False,
          master_params: Optional[Sequence] = None, rounding_seed: Optional[int] = None) -> None:
    r"""Fused Rprop step over lists of arrays, in place (Riedmiller & Braun, 1993).

    .. math::
        g &= \pm\nabla \\
        f &= \eta_+ \text{ if } g\,g_{prev} > 0;\ \eta_- \text{ if } g\,g_{prev} < 0;\ 1 \text{ otherwise} \\
        s &= \mathrm{clamp}(s f, s_{min}, s_{max}) \\
        g &= 0 \text{ where } f = \eta_- \\
        p &= p - \mathrm{sign}(g)\, s, \quad g_{prev} = g

    The step sizes ``step_size_list`` start at the optimizer's lr (torch's ``Rprop(lr=...)``) and
    ``prevs`` at zero; lr is not read after that, so this function does not take it.

    Args:
        params: arrays updated in place (C-contiguous, writable, float32 or float64).
        grads: one gradient per param, same shape and dtype.
        prevs: :math:`g_{prev}`, one per param (start at zero).
        step_size_list: :math:`s`, one per param (start at lr).
        step: the step being taken, counting from 1 (counted, not read).
        etas: :math:`(\eta_-, \eta_+)`, 0 < η− < 1 < η+ (default: (0.5, 1.2)).
        step_sizes: :math:`(s_{min}, s_{max})` (default: (1e-6, 50)).
        maximize: ascend instead of descend (default: False).

    ``master_params``, ``rounding_seed`` and 16-bit lists: README, "Mixed precision".

    Example::

        fusedopt.functional.rprop([w], [g], [np.zeros_like(w)], [np.full_like(w, 1e-2)], step=1)
    """
    run(RPROP, params, grads, dict(prevs=prevs, step_size_list=step_size_list), step,
        dict(etas=etas, step_sizes=step_sizes, maximize=maximize),
        master_params=master_params, rounding_seed=rounding_seed)


rprop.spec = RPROP  # type: ignore[attr-defined]
