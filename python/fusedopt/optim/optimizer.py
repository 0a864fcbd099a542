"""Optimizer base: param groups, per-param state, state_dict, and one fused call per group.

Params are NumPy arrays, which are not hashable, so ``state`` is keyed by the param's index in the
order of ``param_groups`` (the index torch uses in its ``state_dict``).
"""

from __future__ import annotations

import copy
import itertools
import operator
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from .. import backends

ParamsT = Union[Iterable[np.ndarray], Iterable[Dict[str, Any]]]

_SUPPORTED_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_STEP = operator.itemgetter("step")


def _is_array(x) -> bool:
    return isinstance(x, np.ndarray) or backends.is_cuda_array(x)


def _check_param(p, where: str) -> None:
    if backends.is_cuda_array(p):
        from ..backends import cuda

        p = cuda.as_cupy(where, p)  # a view, to read dtype and flags the same way for every framework
    elif not isinstance(p, np.ndarray):
        raise TypeError(f"{where}: expected a numpy.ndarray, got {type(p).__name__}")
    if p.dtype not in _SUPPORTED_DTYPES:
        raise TypeError(f"{where}: dtype {p.dtype} is not supported; expected float32 or float64")
    if not p.flags.c_contiguous:
        raise ValueError(f"{where}: array is not C-contiguous; fusedopt updates in place and never copies")
    if isinstance(p, np.ndarray) and not p.flags.writeable:
        raise ValueError(f"{where}: array is read-only; it is updated in place, so it must be writable")


def _full_like(p, value):
    """A state buffer on the param's device."""
    if backends.is_cuda_array(p):
        import cupy

        from ..backends import cuda

        return cupy.full_like(cuda.as_cupy("params", p), value)
    return np.full_like(p, value)


def _copy_like(v, p):
    """A C-contiguous copy of saved state ``v`` with the dtype and device of param ``p``."""
    if backends.is_cuda_array(p):
        import cupy

        from ..backends import cuda

        view = cuda.as_cupy("params", p)
        with cupy.cuda.Device(view.data.device_id):
            return cupy.array(v, dtype=view.dtype, order="C", copy=True)
    if backends.is_cuda_array(v):
        from ..backends import cuda

        v = cuda.as_cupy("state_dict", v).get()
    return np.array(v, dtype=p.dtype, order="C", copy=True)


class Optimizer:
    """Base class. A subclass sets:

    * ``_functional``: the fused step of :mod:`fusedopt.functional` it calls,
    * ``_check``: that step's hyperparameter check (same keywords, no arrays),
    * ``_hyperparameters``: the group keys passed to both,
    * ``_buffer_names(group)``: the state buffers, in the functional's positional order (None for
      a list the options do not use).
    """

    _functional: Callable[..., None]
    _check: Callable[..., None]
    _hyperparameters: Tuple[str, ...]

    def __init__(self, params: ParamsT, defaults: Dict[str, Any]) -> None:
        self.defaults = defaults
        self.state: Dict[int, Dict[str, Any]] = {}
        self.param_groups: List[Dict[str, Any]] = []
        self._params: List[np.ndarray] = []
        groups = [params] if _is_array(params) else list(params)
        if not groups:
            raise ValueError("params: empty list, nothing to optimize")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    # --- subclass hooks -------------------------------------------------------------------------

    def _buffer_names(self, group: Dict[str, Any]) -> Tuple[Optional[str], ...]:
        raise NotImplementedError

    def _initial_value(self, name: str, group: Dict[str, Any]) -> float:
        return 0.0

    def _step_for(self, state: Dict[str, Any], created_buffers: bool) -> int:
        return state["step"] + 1

    # --- param groups ---------------------------------------------------------------------------

    def add_param_group(self, param_group: Dict[str, Any]) -> None:
        """Adds a group; keys it lacks take the optimizer's defaults."""
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group: expected a dict, got {type(param_group).__name__}")
        if "params" not in param_group:
            raise ValueError("param_group: needs a 'params' entry")
        params = param_group["params"]
        params = [params] if _is_array(params) else list(params)
        g = len(self.param_groups)
        if not params:
            raise ValueError(f"param_groups[{g}]: empty params list")
        for i, p in enumerate(params):
            _check_param(p, f"param_groups[{g}]['params'][{i}]")
            if any(p is q for q in self._params) or any(p is q for q in params[:i]):
                raise ValueError(f"param_groups[{g}]['params'][{i}]: appears more than once in the optimizer")
        group = {**self.defaults, **param_group, "params": params}
        self._check(step=1, **self._hyper(group))
        self.param_groups.append(group)
        self._params.extend(params)

    def _hyper(self, group: Dict[str, Any]) -> Dict[str, Any]:
        return {k: group[k] for k in self._hyperparameters}

    # --- the step -------------------------------------------------------------------------------

    def step(self, grads: Sequence[Optional[np.ndarray]]) -> None:
        """Updates every param in place from ``grads`` (one per param, in ``param_groups`` order;
        ``None`` skips a param). All groups are checked before any array is written."""
        if not isinstance(grads, (list, tuple)):
            raise TypeError(f"grads: expected a list of arrays, got {type(grads).__name__}")
        n = len(self._params)
        if len(grads) != n:
            raise ValueError(f"grads: expected {n} arrays (one per param, None to skip one), got {len(grads)}")
        if not self._steady_step(grads):
            self._general_step(grads)

    def _steady_step(self, grads) -> bool:
        """The common case, kept short: one group, every param has a gradient and state, all at the
        same step. Returns False (having changed nothing) when the general path is needed. The
        per-param work runs in map() over the states rather than in a Python loop."""
        if len(self.param_groups) != 1 or len(self.state) != len(self._params):
            return False
        group = self.param_groups[0]
        names = self._buffer_names(group)
        states = list(map(self.state.__getitem__, range(len(self._params))))
        steps = set(map(_STEP, states))
        if len(steps) != 1 or type(None) in set(map(type, grads)):
            return False
        for name in names:
            if name is not None and not all(map(operator.contains, states, itertools.repeat(name))):
                return False
        step = steps.pop() + 1
        self._functional(self._params, grads,
                         *(None if name is None else list(map(operator.itemgetter(name), states)) for name in names),
                         step=step, **self._hyper(group))
        for s in states:
            s["step"] = step
        return True

    def _general_step(self, grads) -> None:
        calls = []  # (group, buffer names, param indices, step)
        new_states = {}
        first = 0
        for group in self.param_groups:
            names = self._buffer_names(group)
            by_step: Dict[int, List[int]] = {}
            for i in range(first, first + len(group["params"])):
                if grads[i] is None:
                    continue
                state = self.state.get(i)
                if state is None:
                    state = new_states[i] = {"step": 0}
                created = self._add_missing_buffers(state, self._params[i], names, group)
                by_step.setdefault(self._step_for(state, created), []).append(i)
            calls.extend((group, names, indices, step) for step, indices in by_step.items())
            first += len(group["params"])

        states = {**self.state, **new_states} if new_states else self.state
        if len(calls) > 1:  # the kernels check one call each: check them all before the first writes
            for group, names, indices, step in calls:
                self._check(step=step, **self._hyper(group))
                backends.backend_for(self._params).check_lists(*self._lists(names, indices, grads, states))
        for group, names, indices, step in calls:
            self._functional(*self._lists(names, indices, grads, states), step=step, **self._hyper(group))
            for i in indices:
                states[i]["step"] += 1
        self.state.update(new_states)

    def _lists(self, names, indices, grads, states):
        params = [self._params[i] for i in indices]
        return (params, [grads[i] for i in indices],
                *(None if name is None else [states[i][name] for i in indices] for name in names))

    def _add_missing_buffers(self, state, param, names, group) -> bool:
        created = False
        for name in names:
            if name is not None and name not in state:
                state[name] = _full_like(param, self._initial_value(name, group))
                created = True
        return created

    # --- saving and loading -------------------------------------------------------------------

    def state_dict(self) -> Dict[str, Any]:
        """A snapshot (arrays are copied): ``{"state": {index: {...}}, "param_groups": [{..., "params": [indices]}]}``."""
        groups, first = [], 0
        for group in self.param_groups:
            saved = {k: copy.deepcopy(v) for k, v in group.items() if k != "params"}
            saved["params"] = list(range(first, first + len(group["params"])))
            groups.append(saved)
            first += len(group["params"])
        state = {i: {k: (v.copy() if _is_array(v) else v) for k, v in s.items()} for i, s in self.state.items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        """Restores hyperparameters and state (copied into new arrays of each param's dtype)."""
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups):
            raise ValueError(f"state_dict: has {len(groups)} param groups, this optimizer has {len(self.param_groups)}")
        for g, (saved, group) in enumerate(zip(groups, self.param_groups)):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(f"state_dict: param_groups[{g}] has {len(saved['params'])} params, "
                                 f"this optimizer's has {len(group['params'])}")
        index = {saved_i: i for saved, group, first in self._group_starts(groups)
                 for i, saved_i in zip(range(first, first + len(group["params"])), saved["params"])}
        state = {}
        for saved_i, s in state_dict["state"].items():
            if saved_i not in index:
                raise ValueError(f"state_dict: state for param {saved_i!r}, which no group lists")
            i = index[saved_i]
            p = self._params[i]
            entry = {}
            for k, v in s.items():
                if _is_array(v):
                    if tuple(v.shape) != tuple(p.shape):
                        raise ValueError(f"state_dict: state[{saved_i}][{k!r}] has shape {v.shape}, param {i} has {p.shape}")
                    v = _copy_like(v, p)
                entry[k] = v
            state[i] = entry
        for saved, group in zip(groups, self.param_groups):
            group.update({k: copy.deepcopy(v) for k, v in saved.items() if k != "params"})
        self.state = state

    def _group_starts(self, saved_groups):
        first = 0
        for saved, group in zip(saved_groups, self.param_groups):
            yield saved, group, first
            first += len(group["params"])

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for g, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {g}")
            lines += [f"    {k}: {v}" for k, v in sorted(group.items()) if k != "params"]
        return "\n".join(lines + [")"])
