"""``fusedopt.Adafactor``: the optimizer class of Adafactor, whose state is shaped by each param's
dimensions (fusedopt.functional.adafactor). Everything but the step and the state's shapes is the
common :class:`~fusedopt.optim.Optimizer`'s: param groups, ``state`` by param index, state dicts.

A step is one fused call for every param with a gradient, all groups together (each param with its
group's scalars), so that every array is checked before anything is written."""

from __future__ import annotations

import re
from typing import Any, Dict, Optional, Sequence, Tuple


from .. import backends
from ..functional._scaling import check_grad_scale
from ..functional.adafactor import ADAFACTOR
from .optimizer import Optimizer, ParamsT, _ParamState

_LIST_ENTRY = re.compile(r"\b(params|grads|row_vars|col_vars|variances)\[(\d+)\]")
_STATE_KEY = {"row_vars": "row_var", "col_vars": "col_var", "variances": "variance"}


class Adafactor(Optimizer):
    __doc__ = (f"{ADAFACTOR.summary}\n\n"
               "Same hyperparameters, defaults, state keys and update as ``torch.optim.Adafactor``; the update "
               "equation and every argument are in :func:`fusedopt.functional.adafactor`. State per param: "
               "``row_var`` and ``col_var`` for a param of 2 or more dims, ``variance`` for the others.\n\n"
               "Example::\n\n    opt = fusedopt.Adafactor([w, b], lr=1e-2)\n    opt.step([gw, gb])\n")
    spec = ADAFACTOR  # type: ignore[assignment]

    def __init__(self, params: ParamsT, lr: float = 1e-2, beta2_decay: float = -0.8,
                 eps: Tuple[Optional[float], float] = (None, 1e-3), d: float = 1.0, weight_decay: float = 0.0,
                 maximize: bool = False) -> None:
        super().__init__(params, lr=lr, beta2_decay=beta2_decay, eps=eps, d=d, weight_decay=weight_decay,
                         maximize=maximize)

    def _state_shape(self, key: str, p) -> Optional[Tuple[int, ...]]:
        return ADAFACTOR.buffer_shape(key, p.shape)

    def step(self, grads: Sequence[Optional[Any]], *, grad_scale: float = 1.0) -> None:  # type: ignore[override]
        """Updates every param in place from ``grads`` (one per param, in ``param_groups`` order;
        ``None`` skips a param and its step count). Everything is checked before anything is
        written. ``grad_scale`` multiplies every gradient inside the step (see ``scaled_step``)."""
        if grad_scale != 1.0:
            check_grad_scale(grad_scale)
        with self._lock:
            lists: Dict[str, list] = {k: [] for k in ("params", "grads", "row_vars", "col_vars", "variances")}
            scalars, indices, names, new_state = [], [], [], {}
            packed: Dict[tuple, bytes] = {}
            for g, j, i, p, group, state in self._with_grads(grads):
                for b in ADAFACTOR.buffers:
                    shape = ADAFACTOR.buffer_shape(b.key, p.shape)
                    if shape is not None and b.key not in state:
                        state[b.key] = backends.for_array(p).zeros_like_shape(p, shape)
                        new_state[i] = state
                if i not in self._state:
                    new_state[i] = state
                key = (g, state["step"] + 1, p.dtype)
                if key not in packed:
                    packed[key] = ADAFACTOR.packed_scalars(group, state["step"] + 1, p.dtype, grad_scale)
                scalars.append(packed[key])
                lists["params"].append(p)
                lists["grads"].append(grads[i])
                for argument, state_key in _STATE_KEY.items():
                    lists[argument].append(state.get(state_key))
                indices.append(i)
                names.append(f"param_groups[{g}]['params'][{j}]")
            if not indices:
                return
            try:
                backends.for_arrays(lists["params"]).adafactor_step(*lists.values(), scalars)
            except (TypeError, ValueError) as e:
                def describe(argument: str, k: int) -> str:
                    if argument == "params":
                        return names[k]
                    i = indices[k]
                    return f"grads[{i}]" if argument == "grads" else f"state[{i}]['{_STATE_KEY[argument]}']"

                raise type(e)(_named(str(e), describe)) from None
            for i, state in new_state.items():
                dict.__setitem__(self._state, i, _ParamState(self, state))
            for i in indices:
                state = dict.__getitem__(self._state, i)
                dict.__setitem__(state, "step", state["step"] + 1)


def _named(message: str, describe) -> str:
    """The binding's message with each list entry ("row_vars[3]") named as the user knows it:
    ``describe(list_name, k)``."""
    return _LIST_ENTRY.sub(lambda match: describe(match.group(1), int(match.group(2))), message)
