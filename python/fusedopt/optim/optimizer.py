"""The optimizer class of every spec: param groups, per-param state, state_dict, and a prepared
plan (DESIGN.md §1, "Plans") so that a steady ``step(grads)`` checks and passes only the gradients.

Params are arrays, which are not hashable, so ``state`` is keyed by the param's index in the order
of ``param_groups`` (the index torch uses in its ``state_dict``).

The plan is the backend's ``Plan`` over "calls": the params of one (param group, dtype, step count)
with the state buffers their rule variant uses. It is built at the first step and again after
anything that changes what it holds: ``add_param_group``, ``load_state_dict``, a write into
``state``, a step where some gradient is None, or a hyperparameter change that needs another state
buffer (``amsgrad`` turned on). Hyperparameters are read from ``param_groups`` at every step (so a
schedule can set ``lr``) and checked again whenever they change.
"""

from __future__ import annotations

import copy
import inspect
import numbers
import threading
from typing import Any, ClassVar, Dict, Iterable, List, Optional, Sequence, Tuple, Union


from .. import backends
from ..functional import _precision
from ..functional._scaling import ScaledStep, check_grad_scale, scaled_step_factor
from ..functional._spec import REQUIRED, Spec

ParamsT = Union[Iterable[Any], Iterable[Dict[str, Any]]]


class _ParamState(dict):
    """One param's state. Writing to it makes the optimizer rebuild its plan at the next step."""

    __slots__ = ("_owner",)

    def __init__(self, owner: "Optimizer", *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._owner = owner

    def __reduce__(self):  # pickles as a plain dict
        return (dict, (dict(self),))



def _invalidating(name: str):
    method = getattr(dict, name)

    def changed(self, *args, **kwargs):
        owner = self._owner
        with owner._lock:  # no step runs between dropping the plan and the write
            owner._state_changed()
            return method(self, *args, **kwargs)

    changed.__name__ = name
    return changed


class _State(dict):
    """param index -> _ParamState; assigning an entry wraps it and makes the plan be rebuilt."""

    __slots__ = ("_owner",)

    def __init__(self, owner: "Optimizer", entries=()):
        super().__init__()
        self._owner = owner
        for k, v in dict(entries).items():
            dict.__setitem__(self, k, _ParamState(owner, v))

    def __reduce__(self):
        return (dict, (dict(self),))

    def __setitem__(self, key, value) -> None:
        owner = self._owner
        with owner._lock:
            owner._state_changed()
            dict.__setitem__(self, key, value if isinstance(value, _ParamState) else _ParamState(owner, value))

    def update(self, *args, **kwargs) -> None:
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def setdefault(self, key, default=None):
        if key not in self:
            self[key] = default if default is not None else {}
        return dict.__getitem__(self, key)


for _name in ("__setitem__", "__delitem__", "pop", "popitem", "clear", "update", "setdefault"):
    setattr(_ParamState, _name, _invalidating(_name))
for _name in ("__delitem__", "pop", "popitem", "clear"):
    setattr(_State, _name, _invalidating(_name))


class _Call:
    """The params of one (group, dtype, step count) and what the last step used for them."""

    __slots__ = ("group", "indices", "step", "first_step", "present", "checked", "variant")

    def __init__(self, group, indices, step, first_step, present):
        self.group, self.indices, self.step, self.first_step, self.present = group, indices, step, first_step, present
        self.checked: Optional[tuple] = None  # the hyperparameters last checked
        self.variant = -1


class Optimizer:
    """Base of the optimizer classes; each sets ``spec`` (see :func:`optimizer_class`).

    Safe to use from several Python threads: ``step``, ``add_param_group``, ``load_state_dict``,
    ``state_dict`` and every write into ``state`` hold the optimizer's lock, so concurrent steps run
    one after the other and none is lost.

    Mixed precision (keyword-only, for every optimizer): params may be bfloat16 (``ml_dtypes``) or
    float16 (grads of the same dtype), computed in float32. ``state_dtype``: the state buffers' dtype
    (float32, bfloat16 or float16; default: the param's, or float32 with master weights);
    ``master_weights=True``: a float32 copy of each 16-bit param (``state[i]['master_param']``) is
    what the step reads and updates, writing the param as its copy rounded to nearest;
    ``rounding_seed``: an int to round bfloat16 writes stochastically (bits keyed by (seed, step,
    param index, element index)), None to round to nearest. float64 params keep float64 state.

    ``capturable=True`` (CUDA arrays, elementwise rules, float32/float64): the step's kernel reads
    its scalars from device memory, so a step can be captured in a CUDA graph and replayed. Run one
    eager step first (it makes the state), capture a step with the same grads arrays (a captured
    step is recorded, not counted), then call :meth:`prepare_replay` before each ``graph.launch()``
    (README, "CUDA graphs")."""

    spec: ClassVar[Spec]

    def __init__(self, params: ParamsT, *args: Any, master_weights: bool = False, state_dtype: Any = None,
                 rounding_seed: Optional[int] = None, capturable: bool = False, **kwargs: Any) -> None:
        self._lock = threading.RLock()
        if not isinstance(master_weights, bool):
            raise TypeError(f"master_weights: expected a bool, got {type(master_weights).__name__}")
        if not isinstance(capturable, bool):
            raise TypeError(f"capturable: expected a bool, got {type(capturable).__name__}")
        self.capturable = capturable
        self.master_weights = master_weights
        self.state_dtype = _precision.state_dtype(state_dtype)
        self.rounding_seed = None if rounding_seed is None else _precision.check_seed(rounding_seed)
        spec = self.spec
        bound = _signature(spec).bind(params, *args, **kwargs)
        defaults = {name: bound.arguments.get(name, spec.defaults[name]) for name in spec.hyper_names}
        spec.check({k: v for k, v in defaults.items() if v is not REQUIRED})
        self.defaults = defaults
        self._state = _State(self)
        self.param_groups: List[Dict[str, Any]] = []
        self._params: List[Any] = []
        self._plan: Any = None
        self._calls: List[_Call] = []
        groups = [params] if backends.is_array(params) else list(params)
        if not groups:
            raise ValueError("params: empty list, nothing to optimize")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    # --- state ------------------------------------------------------------------------------------

    @property
    def state(self) -> Dict[int, Dict[str, Any]]:
        """Per-param state by param index: ``step`` and the spec's buffers (torch's key names)."""
        with self._lock:
            self._sync_steps()
            return self._state

    @state.setter
    def state(self, value) -> None:
        with self._lock:
            self._state_changed()
            self._state = _State(self, value)

    def __getstate__(self) -> Dict[str, Any]:
        state = dict(self.__dict__)
        del state["_lock"]
        return state

    def __setstate__(self, state: Dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.RLock()

    def _state_changed(self) -> None:
        """Before a write into the state: the plan's step counts go into it, and the plan is dropped."""
        self._sync_steps()
        self._plan, self._calls = None, []

    def _sync_steps(self, calls: Optional[Sequence[_Call]] = None) -> None:
        """Writes the plan's step counts into the state (kept in the plan while steps run)."""
        for call in self._calls if calls is None else calls:
            for i in call.indices:
                dict.__setitem__(self._state[i], "step", call.step)

    # --- param groups -----------------------------------------------------------------------------

    def add_param_group(self, param_group: Dict[str, Any]) -> None:
        """Adds a group; keys it lacks take the optimizer's defaults. A param may not share memory
        with another param of the optimizer (a view of it included)."""
        with self._lock:
            self._add_param_group(param_group)

    def _add_param_group(self, param_group: Dict[str, Any]) -> None:
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group: expected a dict, got {type(param_group).__name__}")
        if "params" not in param_group:
            raise ValueError("param_group: needs a 'params' entry")
        params = param_group["params"]
        params = [params] if backends.is_array(params) else list(params)
        g = len(self.param_groups)
        if not params:
            raise ValueError(f"param_groups[{g}]: empty params list")
        for i, p in enumerate(params):
            backends.for_array(p).check_param(p, f"param_groups[{g}]['params'][{i}]")
            if self.capturable and not backends.is_cuda_array(p):
                raise ValueError(f"param_groups[{g}]['params'][{i}]: capturable=True is for CUDA arrays (a step "
                                 f"captured in a CUDA graph); this is a {type(p).__name__}")
            if any(p is q for q in self._params) or any(p is q for q in params[:i]):
                raise ValueError(f"param_groups[{g}]['params'][{i}]: appears more than once in the optimizer")
        self._refuse_shared_memory(params)
        group = {**self.defaults, **param_group, "params": params}
        for name, value in group.items():
            if value is REQUIRED:
                raise TypeError(f"{name}: required (no default, as in torch.optim.{self.spec.class_name})")
        self.spec.check(group)
        self._state_changed()
        self.param_groups.append(group)
        self._params.extend(params)

    def _refuse_shared_memory(self, new_params: List[Any]) -> None:
        """ValueError when two params (those held and ``new_params``, the next group) share memory."""
        names = [f"param_groups[{g}]['params'][{j}]" for g, group in enumerate(self.param_groups)
                 for j in range(len(group["params"]))]
        names += [f"param_groups[{len(self.param_groups)}]['params'][{j}]" for j in range(len(new_params))]
        by_space: Dict[Any, list] = {}
        for i, p in enumerate(self._params + new_params):
            space, begin, end = backends.for_array(p).memory_extent(p)
            by_space.setdefault(space, []).append((begin, end, 0, i))
        for extents in by_space.values():
            backends.refuse_overlaps(extents, lambda _slot, i: names[i],
                                     "the params of an optimizer must not overlap (each is updated once per step)")

    # --- the step ---------------------------------------------------------------------------------

    def step(self, grads: Sequence[Optional[Any]], *, grad_scale: float = 1.0) -> None:
        """Updates every param in place from ``grads`` (one per param, in ``param_groups`` order;
        ``None`` skips a param and its step count). Everything is checked before anything is
        written. ``grad_scale`` multiplies every gradient inside the fused pass (the grads
        themselves are not written): see :meth:`scaled_step`."""
        if grad_scale != 1.0:
            check_grad_scale(grad_scale)
        with self._lock:
            plan = self._plan
            capturing = self.capturable and backends.for_arrays(self._params).capturing()
            if plan is not None:
                arguments = self._step_arguments(self._calls, grad_scale)
                if arguments is not None and plan.step(grads, *arguments):
                    if not capturing:  # a captured step is recorded, not run: prepare_replay counts it
                        self._count_step()
                    return
            if capturing:
                raise RuntimeError("capturable=True: run one eager step with these grads before capturing a step "
                                   "(it makes the state and the plan the graph will use)")
            self._general_step(grads, grad_scale)

    def prepare_replay(self) -> None:
        """Counts one step and queues, on the current stream, the copy of its scalars (computed here,
        as for an eager step) into the device memory that the captured step reads: call it before
        each launch of a CUDA graph holding a step of this optimizer (``capturable=True``)."""
        with self._lock:
            if not self.capturable:
                raise RuntimeError("prepare_replay: this optimizer was made without capturable=True")
            arguments = self._step_arguments(self._calls) if self._plan is not None else None
            if arguments is None:
                raise RuntimeError("prepare_replay: no step of this optimizer to replay (run an eager step, capture "
                                   "one, then prepare each replay); the plan was rebuilt since the capture if the "
                                   "state or the param groups changed")
            self._plan.upload_scalars(*arguments[:2])
            self._count_step()

    def _count_step(self) -> None:
        for call in self._calls:
            call.step += 1
            call.first_step = False

    def scaled_step(self, grads: Sequence[Optional[Any]], *, loss_scale: float = 1.0,
                    max_norm: Optional[float] = None) -> "ScaledStep":
        """A step from gradients of a loss multiplied by ``loss_scale`` (mixed-precision loss
        scaling), clipped to a global L2 norm of ``max_norm`` (``torch.nn.utils.clip_grad_norm_``'s
        rule: a factor min(1, max_norm/(norm + 1e-6)) on every gradient), in two passes over the
        grads instead of four: one read-only pass for their norm and finiteness, then the step with
        1/loss_scale times the clip factor applied inside it. An inf or NaN anywhere skips the step
        and changes nothing (``torch.amp.GradScaler``'s protocol); the report says so. The grads
        are never written."""
        with self._lock:
            self._check_grads_list(grads)
            report, grad_scale = scaled_step_factor(grads, loss_scale, max_norm)
            if not report.skipped:
                self.step(grads, grad_scale=grad_scale)
            return report

    def _step_arguments(self, calls: Sequence[_Call], grad_scale: float = 1.0) -> Optional[tuple]:
        """Each call's variant, scalars and rounding from its group as it is now (checked when it
        changed), or None when a call now needs other state buffers (the plan is rebuilt)."""
        spec = self.spec
        names = spec.hyper_names
        variants, scalars, rounding = [], [], []
        for call in calls:
            group = call.group
            values = tuple(map(group.__getitem__, names))
            hypers = (values, tuple(map(type, values)))  # 1 == 1.0 == True: the types too
            step = 1 if call.first_step else call.step + 1
            if hypers != call.checked:
                spec.check(group)
                call.checked = hypers
                call.variant = spec.variant(group, step)
            elif spec.flags_use_step:
                call.variant = spec.variant(group, step)
            variant = call.variant
            if spec.present[variant] != call.present:
                return None
            variants.append(variant)
            scalars.append(spec.packed_scalars(group, step, grad_scale))
            if self.rounding_seed is not None:
                rounding.append(_precision.rounding(self.rounding_seed, step))
        return variants, scalars, (rounding if self.rounding_seed is not None else None)

    def _with_grads(self, grads):
        """(group index, index in the group, param index, param, group, a copy of its state) of each
        param whose gradient is not None, in ``param_groups`` order, after checking ``grads`` (a list
        with one entry per param) and every group's hyperparameters."""
        self._check_grads_list(grads)
        for group in self.param_groups:
            self.spec.check(group)
        first = 0
        for g, group in enumerate(self.param_groups):
            for j, p in enumerate(group["params"]):
                i = first + j
                if grads[i] is not None:
                    state = dict(self._state.get(i, {"step": 0}))
                    if "step" not in state:
                        raise ValueError(f"state[{i}]: no 'step' entry (the number of steps this param has taken)")
                    yield g, j, i, p, group, state
            first += len(group["params"])

    def _check_grads_list(self, grads) -> None:
        if not isinstance(grads, (list, tuple)):
            raise TypeError(f"grads: expected a list of arrays, got {type(grads).__name__}")
        n = len(self._params)
        if len(grads) != n:
            raise ValueError(f"grads: expected {n} arrays (one per param, None to skip one), got {len(grads)}")

    def _general_step(self, grads, grad_scale: float = 1.0) -> None:
        """Builds the plan for the params that have a gradient (creating the state they lack, kept
        aside until the step has succeeded), runs it, and keeps it when every param took part."""
        self._sync_steps()
        self._plan, self._calls = None, []
        spec = self.spec
        n = len(self._params)
        new_state: Dict[int, Dict[str, Any]] = {}
        calls: Dict[tuple, _Call] = {}
        lists: Dict[tuple, list] = {}
        for g, j, i, p, group, state in self._with_grads(grads):
            variant = spec.variant(group, state["step"] + 1)
            backend = backends.for_array(p)
            created = False
            buffers = spec.buffers_in(variant)
            has_master = self._buffer_dtype(_precision.MASTER, p) is not None
            count = len(buffers) + has_master  # the param's state buffers, each placed apart from p
            for k, b in enumerate(buffers, 1):
                if b.key not in state:
                    state[b.key] = backend.full_like(p, spec.initial_value(b, group), self._buffer_dtype(b.key, p),
                                                     slot=(k, count))
                    created = True
            if has_master and _precision.MASTER not in state:
                state[_precision.MASTER] = backend.copy_like(p, p, "float32", slot=(count, count))
                created = True
            if created or i not in self._state:
                new_state[i] = state
            first_step = created and spec.new_buffer_is_first_step
            key = (g, backend.dtype_name(p), state["step"], first_step, has_master,
                   tuple(backend.dtype_name(state[b.key]) for b in spec.buffers_in(variant)))
            if key not in calls:
                calls[key] = _Call(group, [], state["step"], first_step, spec.present[variant])
                lists[key] = [[], [[] for _ in spec.buffers_in(variant)], [], [],
                              [[] for _ in spec.buffers_in(variant)], [] if has_master else None, []]
            call, (params, buffers, indices, names, buffer_names, master, master_names) = calls[key], lists[key]
            call.indices.append(i)
            params.append(p)
            indices.append(i)
            names.append(f"param_groups[{g}]['params'][{j}]")
            for k, b in enumerate(spec.buffers_in(variant)):
                buffers[k].append(state[b.key])
                buffer_names[k].append(f"state[{i}]['{b.key}']")
            if has_master:
                master.append(state[_precision.MASTER])
                master_names.append(f"state[{i}]['{_precision.MASTER}']")
        if not calls:
            return
        capturable = {"capturable": True} if self.capturable else {}
        plan = backends.for_arrays(self._params).Plan([(spec.rule_index, *lists[key]) for key in calls], n,
                                                      **capturable)
        ordered = list(calls.values())
        arguments = self._step_arguments(ordered, grad_scale)
        assert arguments is not None, "a call's state buffers were made for its variant"
        if not plan.step(grads, *arguments):  # only the params with a gradient are in the plan
            raise AssertionError("unreachable: the plan holds only params with a gradient")
        for i, state in new_state.items():
            dict.__setitem__(self._state, i, _ParamState(self, state))
        for call in ordered:
            call.step += 1
            call.first_step = False
        if sum(len(call.indices) for call in ordered) == n:  # every param took part: keep the plan
            self._plan, self._calls = plan, ordered
        else:
            self._sync_steps(ordered)

    # --- saving and loading -----------------------------------------------------------------------

    def state_dict(self) -> Dict[str, Any]:
        """A snapshot (arrays are copied): ``{"state": {index: {...}}, "param_groups": [{..., "params": [indices]}]}``."""
        with self._lock:
            groups, first = [], 0
            for group in self.param_groups:
                saved = {k: copy.deepcopy(v) for k, v in group.items() if k != "params"}
                saved["params"] = list(range(first, first + len(group["params"])))
                groups.append(saved)
                first += len(group["params"])
            state = {i: {k: (v.copy() if backends.is_array(v) else v) for k, v in s.items()}
                     for i, s in self.state.items()}
            return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        """Restores hyperparameters and state (copied into new arrays of each param's dtype and device).

        Every entry is checked against the optimizer's spec first (group keys and values; state
        keys, step counts, array shapes and dtypes), and nothing changes when one is wrong."""
        with self._lock:
            groups, state = self._checked_state_dict(state_dict)
            for saved, group in zip(groups, self.param_groups):
                group.update(saved)
            self.state = state

    def _checked_state_dict(self, state_dict) -> Tuple[List[Dict[str, Any]], Dict[int, Dict[str, Any]]]:
        """The groups' hyperparameters and the new state (arrays copied to the params' devices), or
        TypeError/ValueError naming the first entry that does not fit this optimizer."""
        spec = self.spec
        where = "state_dict"
        if not isinstance(state_dict, dict):
            raise TypeError(f"{where}: expected a dict, got {type(state_dict).__name__}")
        unknown = sorted(map(str, set(state_dict) - {"state", "param_groups"}))
        if unknown:
            raise ValueError(f"{where}: unknown key {unknown[0]!r} (expected 'state' and 'param_groups')")
        for key, kind in (("param_groups", list), ("state", dict)):
            if key not in state_dict:
                raise ValueError(f"{where}: no {key!r} entry")
            if not isinstance(state_dict[key], kind):
                raise TypeError(f"{where}['{key}']: expected a {kind.__name__}, got {type(state_dict[key]).__name__}")
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"{where}: has {len(saved_groups)} param groups, this optimizer has {len(self.param_groups)}")
        groups, index, first = [], {}, 0
        for g, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            name = f"{where}['param_groups'][{g}]"
            if not isinstance(saved, dict):
                raise TypeError(f"{name}: expected a dict, got {type(saved).__name__}")
            keys = set(saved) - {"params"}
            for key in sorted(map(str, keys - set(spec.hyper_names))):
                raise ValueError(f"{name}[{key!r}]: not a hyperparameter of fusedopt.{spec.class_name} "
                                 f"(expected {', '.join(('params',) + spec.hyper_names)})")
            for key in spec.hyper_names + ("params",):
                if key not in saved:
                    raise ValueError(f"{name}: no {key!r} entry")
            indices = saved["params"]
            if not isinstance(indices, (list, tuple)) or not all(_is_int(i) for i in indices):
                raise TypeError(f"{name}['params']: expected a list of param indices (ints)")
            if len(indices) != len(group["params"]):
                raise ValueError(f"{where}: param_groups[{g}] has {len(indices)} params, "
                                 f"this optimizer's has {len(group['params'])}")
            hypers = {k: copy.deepcopy(saved[k]) for k in spec.hyper_names}
            try:
                spec.check(hypers)
            except (TypeError, ValueError) as e:
                raise type(e)(f"{name}: {e}") from None
            groups.append(hypers)
            for j, saved_i in enumerate(indices):
                if saved_i in index:
                    raise ValueError(f"{name}['params']: param index {saved_i} appears more than once")
                index[saved_i] = first + j
            first += len(group["params"])
        state: Dict[int, Dict[str, Any]] = {}
        buffer_keys = tuple(b.key for b in spec.buffers)
        for saved_i, saved_state in state_dict["state"].items():
            name = f"{where}['state'][{saved_i!r}]"
            if saved_i not in index:
                raise ValueError(f"{name}: state for param {saved_i!r}, which no group lists")
            if not isinstance(saved_state, dict):
                raise TypeError(f"{name}: expected a dict, got {type(saved_state).__name__}")
            i = index[saved_i]
            p = self._params[i]
            entry: Dict[str, Any] = {}
            for key, value in saved_state.items():
                if key == "step":
                    if not _is_int(value):
                        raise TypeError(f"{name}['step']: expected an int (steps taken), got {type(value).__name__}")
                    if value < 0:
                        raise ValueError(f"{name}['step']: expected an int >= 0, got {value}")
                    entry[key] = int(value)
                    continue
                if key == _precision.MASTER and self._buffer_dtype(key, p) is None:
                    raise ValueError(f"{name}[{key!r}]: this optimizer keeps no master copy of param {i} "
                                     f"(master_weights={self.master_weights}, param dtype "
                                     f"{backends.for_array(p).dtype_name(p)})")
                if key not in buffer_keys + (_precision.MASTER,):
                    raise ValueError(f"{name}[{key!r}]: not a state entry of fusedopt.{spec.class_name} "
                                     f"(expected step, {', '.join(buffer_keys)})")
                if not backends.is_array(value):
                    raise TypeError(f"{name}[{key!r}]: expected an array, got {type(value).__name__}")
                expected = self._state_shape(key, p)
                if expected is None:
                    raise ValueError(f"{name}[{key!r}]: param {i} of shape {tuple(p.shape)} has no {key!r} state")
                if tuple(value.shape) != expected:
                    raise ValueError(f"{name}[{key!r}]: shape {tuple(value.shape)} does not match "
                                     f"{'param' if expected == tuple(p.shape) else key + ' of param'} {i} shape "
                                     f"{expected}")
                if backends.for_array(value).dtype_name(value) not in ("float16", "bfloat16", "float32", "float64"):
                    raise TypeError(f"{name}[{key!r}]: dtype {value.dtype} is not a floating-point dtype")
                entry[key] = value
            if "step" not in entry:
                raise ValueError(f"{name}: no 'step' entry (the number of steps this param has taken)")
            state[i] = entry
        for i, entry in state.items():  # copies only once everything is known to fit
            p = self._params[i]
            keys = [key for key in entry if key != "step"]
            for k, key in enumerate(keys, 1):
                entry[key] = backends.for_array(p).copy_like(entry[key], p, self._buffer_dtype(key, p),
                                                            slot=(k, len(keys)))
        return groups, state

    def _buffer_dtype(self, key: str, p) -> Optional[str]:
        """The dtype of state ``key`` of param ``p``: the master copy is float32 (None when p has
        none); a float64 param's state is float64; else ``state_dtype``, or float32 with master
        weights, or the param's."""
        param_dtype = backends.for_array(p).dtype_name(p)
        low = param_dtype in _precision.LOW_PRECISION
        if key == _precision.MASTER:
            return "float32" if self.master_weights and low else None
        if param_dtype == "float64":
            return param_dtype
        if self.state_dtype is not None:
            return self.state_dtype
        return "float32" if self.master_weights and low else param_dtype

    def _state_shape(self, key: str, p) -> Optional[Tuple[int, ...]]:
        """The shape state ``key`` has for param ``p`` (None: p has no such state). Every buffer of
        an elementwise spec is shaped like its param."""
        return tuple(p.shape)

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for g, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {g}")
            lines += [f"    {k}: {v}" for k, v in sorted(group.items()) if k != "params"]
        return "\n".join(lines + [")"])


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _signature(spec: Spec, precision: bool = False) -> inspect.Signature:
    """torch's constructor signature (params, then the hyperparameters); with ``precision``, the
    keyword-only mixed-precision options and ``capturable`` after them."""
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    options = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default)
               for name, default in _precision.OPTIONS + (("capturable", False),)]
    return inspect.Signature([inspect.Parameter("params", kind)] + [
        inspect.Parameter(h.name, kind, default=inspect.Parameter.empty if h.default is REQUIRED else h.default)
        for h in spec.hypers] + (options if precision else []))


def optimizer_class(spec: Spec) -> type:
    """The optimizer class of a spec: torch's constructor signature (params, then the
    hyperparameters with their defaults), ``step(grads)``, ``param_groups``, ``state``,
    ``state_dict``/``load_state_dict``."""
    signature = _signature(spec, precision=True)
    example_lr = "lr=0.1" if spec.defaults.get("lr") is REQUIRED else f"lr={spec.defaults.get('lr')}"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        Optimizer.__init__(self, *args, **kwargs)

    __init__.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD), *signature.parameters.values()])
    doc = (f"{spec.summary}\n\n"
           f"Same hyperparameters, defaults and update as ``torch.optim.{spec.class_name}``; the update equation "
           f"and every argument are in :func:`fusedopt.functional.{spec.name}`.\n\n"
           f"Signature: ``{spec.class_name}{signature}``\n\n"
           f"Example::\n\n    opt = fusedopt.{spec.class_name}([w, b], {example_lr})\n    opt.step([gw, gb])\n")
    return type(spec.class_name, (Optimizer,), {"spec": spec, "__init__": __init__, "__doc__": doc,
                                                 "__module__": "fusedopt.optim", "__qualname__": spec.class_name})
