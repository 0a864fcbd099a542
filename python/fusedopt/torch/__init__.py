"""fusedopt for PyTorch: drop-in ``torch.optim`` optimizers whose step is fusedopt's fused kernel.

    import fusedopt.torch
    opt = fusedopt.torch.Adam(model.parameters(), lr=1e-3)   # a real torch.optim.Optimizer
    loss.backward(); opt.step(); opt.zero_grad()

Each class (``SGD, Adagrad, RMSprop, Adam, AdamW, Adamax, RAdam, Adadelta, Rprop, NAdam, ASGD,
Adafactor``, and ``Lion``, ``LAMB``, ``LARS``, which torch.optim lacks) subclasses
``torch.optim.Optimizer`` with the constructor signature of the torch class of the same name, reads
``p.grad``, keeps its state under torch's keys (``step`` as a float32 tensor, ``exp_avg``, ...), so that
``state_dict()`` crosses to and from ``torch.optim`` both ways, and works with ``lr_scheduler``,
``torch.amp.GradScaler``, ``zero_grad``, closures and the step/state-dict hooks.

CPU tensors go to the C++ kernels as NumPy views of their memory (no copy: the param's data pointer
does not change). CUDA tensors go to the CUDA kernels as CuPy views, launched on torch's current stream
of their device, so a step is ordered after the backward pass that wrote the grads (this path has not
run on a GPU yet). While a CPU group's params, state entries and step counts stay as they were, a step
gathers the new grads in C++ by data pointer (``_Steady``), so its Python cost does not grow with the
params. CPU steps run on torch's OpenMP team when torch's ops run on the same OpenMP library
(``fusedopt.set_thread_runtime("openmp")``, chosen at import unless the user chose a runtime). Not
yet: CUDA groups take the general path every step.

torch-only switches: ``foreach`` and ``fused`` are accepted and change nothing (the step is always one
fused pass); ``capturable=True`` and ``differentiable=True`` are refused; Adam's
``decoupled_weight_decay=True`` is AdamW. Tensor hyperparameters (``lr=torch.tensor(0.01)``) are read
as numbers at each step.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Dict, List, Optional

import torch

from .. import _core
from ..functional import SPECS, _precision
from ..functional._scaling import ScaledStep, scaled_step_factor
from ..functional._spec import Spec, run
from ..functional.adam import ADAMW
from ..backends.cpu import PAGE, PLACED_FROM, placed_start

# One class per spec. The signature is the torch.optim class's of the same name, or for an optimizer
# torch lacks (Lion) fusedopt's own with torch's keyword-only switches.
__all__ = [spec.class_name for spec in SPECS]

_SUPPORTED_DTYPES = (torch.float32, torch.float64, torch.bfloat16, torch.float16)
_REFUSED_SWITCHES = {  # torch-only switch -> (the value that is harmless, why another is refused)
    "capturable": (False, "CUDA graph capture is not supported by fusedopt.torch yet"),
    "differentiable": (False, "fusedopt's step is not differentiable (it runs outside autograd)"),
}


def _plain(name: str, value):
    """A hyperparameter as the kernels read it: 1-element tensors as numbers, tuples element-wise."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(f"{name}: Tensor {name} must be 1-element, got {value.numel()} elements")
        return value.item()
    if isinstance(value, tuple):
        return tuple(_plain(f"{name}[{i}]", v) for i, v in enumerate(value))
    return value


def _immutable(value) -> bool:
    """Whether a hyperparameter's value cannot change without being replaced by another object."""
    if isinstance(value, tuple):
        return all(_immutable(v) for v in value)
    return value is None or type(value) in (bool, int, float, str)


def _numpy(tensor: torch.Tensor):
    """The NumPy view of a CPU tensor's memory, or the CuPy view of a CUDA tensor's (writes go to the
    tensor; no copy either way)."""
    if tensor.is_cuda:
        from ..backends.cuda import as_cupy

        tensor = tensor.detach()  # detached: torch refuses the CUDA array interface otherwise
        if tensor.dtype == torch.bfloat16:  # CuPy has no bfloat16: its bits as uint16 (the CUDA backend's convention)
            import numpy as np

            return as_cupy("tensor", tensor.view(torch.int16)).view(np.uint16)
        return as_cupy("tensor", tensor)
    tensor = tensor.detach()  # a param, or a grad made with create_graph=True, requires grad
    if tensor.dtype == torch.bfloat16:  # NumPy has no bfloat16 of its own: ml_dtypes' over the same bits
        return tensor.view(torch.int16).numpy().view(_bfloat16())
    return tensor.numpy()


def _torch_dtype(name: str) -> torch.dtype:
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


def _bfloat16():
    try:
        import ml_dtypes
    except ImportError:
        raise TypeError("bfloat16 tensors need ml_dtypes, NumPy's bfloat16 (pip install ml_dtypes)") from None
    return ml_dtypes.bfloat16


def _on_torch_stream(tensor: torch.Tensor):
    """A context in which CuPy launches on torch's current stream of the tensor's device (so a step is
    ordered after the backward pass that wrote the grads), or a no-op context for CPU tensors."""
    import contextlib

    if not tensor.is_cuda:
        return contextlib.nullcontext()
    import cupy

    stream = torch.cuda.current_stream(tensor.device)
    stack = contextlib.ExitStack()
    stack.enter_context(cupy.cuda.Device(tensor.device.index))
    stack.enter_context(cupy.cuda.ExternalStream(stream.cuda_stream, tensor.device.index))
    return stack


class FusedOptimizer(torch.optim.Optimizer):
    """Base of the classes below; each sets ``spec`` and ``torch_class``."""

    spec: Spec
    torch_class: Optional[type]

    def __init__(self, params, defaults: Dict[str, Any], master_weights: bool = False, state_dtype: Any = None,
                 rounding_seed: Optional[int] = None) -> None:
        if not isinstance(master_weights, bool):
            raise TypeError(f"master_weights: expected a bool, got {type(master_weights).__name__}")
        self.master_weights = master_weights
        self.state_dtype = None if state_dtype is None else _torch_dtype(_precision.state_dtype(
            str(state_dtype).replace("torch.", "") if isinstance(state_dtype, torch.dtype) else state_dtype))
        self.rounding_seed = None if rounding_seed is None else _precision.check_seed(rounding_seed)
        for switch, (harmless, why) in _REFUSED_SWITCHES.items():
            if defaults.get(switch, harmless) != harmless:
                raise ValueError(f"{switch}={defaults[switch]!r}: {why}")
        self._plain_hypers: Dict[int, tuple] = {}  # id(group) -> (group, its raw values, _hypers' result)
        self._spec_for(defaults).check(self._hypers(defaults))
        self._checked: Dict[int, tuple] = {}  # group index -> the hyperparameters last found valid
        self._views: Dict[int, tuple] = {}  # id(tensor) -> (tensor, data pointer, NumPy view)
        self._step_blocks: Dict[int, tuple] = {}  # group index -> (float32 counts, their 0-d views)
        self._steady: Dict[int, _Steady] = {}  # group index -> what its last step prepared, to reuse
        super().__init__(params, defaults)
        if self.spec.class_name == "Adagrad":  # torch.optim.Adagrad makes its state at construction
            for group in self.param_groups:
                h = self._hypers(group)
                for p in group["params"]:
                    state = self.state[p]
                    state["step"] = torch.tensor(0.0, dtype=torch.float32)
                    for k, b in enumerate(self.spec.buffers, 1):
                        state[b.key] = _placed_full(p, self.spec.initial_value(b, h), p.dtype,
                                                    (k, len(self.spec.buffers)))

    def state_dict(self) -> Dict[str, Any]:
        """torch's state dict. For NAdam and ASGD, torch's per-param scalar state (``mu_product``;
        ``eta`` and ``mu``), which fusedopt derives from the step count, is written into the state
        first, as tensors of torch's scalar dtype (float32, or float64 with a float64 default); a
        loaded value of it is not read."""
        derived = self.spec.derived_state
        if derived is not None:
            dtype = torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32  # torch's choice
            for group in self.param_groups:
                h = self._hypers(group)
                for p in group["params"]:
                    state = self.state.get(p)
                    if state and "step" in state:
                        for key, value in derived(h, int(state["step"])).items():
                            state[key] = torch.tensor(value, dtype=dtype)
        return super().state_dict()

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        """torch's load_state_dict, which casts every floating-point state tensor to its param's
        dtype; then the state buffers and master copies of 16-bit params are cast again, from the
        saved values, to the dtypes this optimizer keeps them in (a float32 master copy stays exact)."""
        super().load_state_dict(state_dict)
        saved_ids = [i for group in state_dict["param_groups"] for i in group["params"]]
        params = [p for group in self.param_groups for p in group["params"]]
        for saved_id, p in zip(saved_ids, params):
            saved, state = state_dict["state"].get(saved_id), self.state.get(p)
            if not saved or not state or p.dtype not in (torch.bfloat16, torch.float16):
                continue
            for key, value in saved.items():
                if key == _precision.MASTER and self._has_master(p):
                    state[key] = value.detach().to(torch.float32, copy=True)
                elif key in {b.key for b in self.spec.buffers} and torch.is_tensor(value):
                    state[key] = value.detach().to(self._buffer_dtype(p), copy=True)

    def _spec_for(self, group) -> Spec:
        return ADAMW if self.spec.name == "adam" and group.get("decoupled_weight_decay") else self.spec

    def _hypers(self, group) -> Dict[str, Any]:
        """The group's hyperparameters as the kernels read them (_plain). Converted again unless every
        value is the same immutable object (number, bool, str, None, or a tuple of them) as last time:
        a tensor or a list can change in place."""
        names = self.spec.hyper_names
        raw = tuple(group[name] for name in names)
        cached = self._plain_hypers.get(id(group))
        if cached is not None and cached[0] is group and all(a is b for a, b in zip(cached[1], raw)):
            return dict(cached[2])
        plain = {name: _plain(name, value) for name, value in zip(names, raw)}
        if all(_immutable(v) for v in raw):
            if len(self._plain_hypers) > 2 * len(getattr(self, "param_groups", ())) + 2:
                self._plain_hypers.clear()  # groups replaced (load_state_dict): forget the old ones
            self._plain_hypers[id(group)] = (group, raw, plain)
        else:
            self._plain_hypers.pop(id(group), None)
        return dict(plain)

    # torch.amp.GradScaler hands this optimizer its scale and found_inf (as torch's fused Adam) instead
    # of unscaling the grads in a pass of their own: the step skips on an inf and unscales inside.
    _step_supports_amp_scaling = True

    @torch.no_grad()
    def step(self, closure: Optional[Callable[[], Any]] = None):
        """One fused step of every param that has a ``.grad`` (the others are skipped, as torch
        skips them). Returns the closure's loss when a closure is given. Under
        ``torch.amp.GradScaler.step`` a step with an inf or NaN gradient changes nothing, and the
        grads are unscaled inside the fused pass."""
        loss = _closure_loss(closure)
        grad_scale = _amp_grad_scale(self)
        if grad_scale is not None:
            self._step(grad_scale)
        return loss

    @torch.no_grad()
    def scaled_step(self, *, loss_scale: float = 1.0, max_norm: Optional[float] = None) -> ScaledStep:
        """``fusedopt.Optimizer.scaled_step`` for these params' ``.grad``: loss scaling, the global
        norm clipping of ``torch.nn.utils.clip_grad_norm_`` and the step, in one read-only pass over
        the grads and the fused step (CPU tensors; the grads are not written)."""
        report, grad_scale = scaled_step_factor(_grads_of(self), loss_scale, max_norm)
        if not report.skipped:
            self._step(grad_scale)
        return report

    def _step(self, grad_scale: float) -> None:
        steady_work, general_work = [], []
        for g, group in enumerate(self.param_groups):  # every group checked before any is updated
            steady = self._steady.get(g)
            gathered = steady.gather(self, group, grad_scale) if steady is not None else None
            if gathered is not None:
                steady_work.append((steady, gathered))
            else:
                self._steady.pop(g, None)
                general_work.append((g, group, self._prepare(g, group)))
        for steady, gathered in steady_work:
            steady.run(gathered)
        for g, group, prepared in general_work:
            for spec, step, lists, h, advance, first in prepared:
                with _on_torch_stream(first):
                    run(spec, lists["params"], lists["grads"], lists, step, h, grad_scale,
                        master_params=lists["master_params"], rounding_seed=self.rounding_seed)
                if advance is not None:
                    block, indices = advance
                    if len(indices) == len(block):
                        block += 1.0
                    else:
                        block[indices] += 1.0
            steady = _Steady.after(self, g, group)
            if steady is not None:
                self._steady[g] = steady

    def _has_master(self, p: torch.Tensor) -> bool:
        return self.master_weights and p.dtype in (torch.bfloat16, torch.float16)

    def _buffer_dtype(self, p: torch.Tensor) -> torch.dtype:
        """The state buffers' dtype for param p: float64 for float64, else state_dtype, else float32
        with master weights, else the param's (torch's own choice)."""
        if p.dtype == torch.float64:
            return p.dtype
        if self.state_dtype is not None:
            return self.state_dtype
        return torch.float32 if self._has_master(p) else p.dtype

    def _view(self, tensor: torch.Tensor, where: "_Where", key: Optional[str] = None):
        return _cached_view(self._views, tensor, where, key)

    def _prepare(self, g: int, group: Dict[str, Any]) -> list:
        """The group's params with a gradient, checked, cut by step count into functional calls:
        (spec, step, lists of NumPy views, kernel hyperparameters, the step counts to advance, a
        tensor of the call's device). Creates the state a param lacks."""
        spec = self._spec_for(group)
        h = self._hypers(group)
        checked = (spec.name, tuple(h.values()), tuple(map(type, h.values())))  # 1 == 1.0 == True: types too
        if self._checked.get(g) != checked:
            spec.check(h)
            self._checked[g] = checked
        kernel_h = {name: h[name] for name in spec.kernel_hypers}
        keeps_step = not spec.new_buffer_is_first_step  # torch's SGD keeps no step count
        with_grad = [(j, p) for j, p in enumerate(group["params"]) if p.grad is not None]
        states = [self.state[p] for _, p in with_grad]
        counts = self._step_counts(g, states) if keeps_step else None
        buffers_at: Dict[int, tuple] = {}
        calls: Dict[int, tuple] = {}
        for k, ((j, p), state) in enumerate(zip(with_grad, states)):
            where = _Where(g, j)
            grad = p.grad
            if (grad.layout is not torch.strided or grad.dtype is not p.dtype or not grad.is_contiguous()
                    or grad.is_neg()):
                _check_grad(p, grad, str(where))
            if keeps_step:
                step = counts[k] + 1
            else:  # SGD: a momentum buffer that does not exist yet starts at the gradient (step 1)
                step = 1 if state.get("momentum_buffer") is None else 2
            buffers = buffers_at.get(step)
            if buffers is None:
                buffers = buffers_at[step] = spec.buffers_in(spec.variant(h, step))
            master = self._has_master(p)
            count = len(buffers) + master  # the param's state buffers, each placed apart from p
            for b_index, b in enumerate(buffers, 1):
                if state.get(b.key) is None:
                    state[b.key] = _placed_full(p, spec.initial_value(b, h), self._buffer_dtype(p), (b_index, count))
            if master and state.get(_precision.MASTER) is None:
                state[_precision.MASTER] = _placed_copy(p, torch.float32, (count, count))
            key = (step, p.device, p.dtype, master)  # one fused call per step count, device and storage
            if key not in calls:
                calls[key] = ({"params": [], "grads": [], "master_params": [] if master else None,
                               **{b.argument: [] for b in spec.buffers}}, [], p)
            lists, steps, _ = calls[key]
            lists["params"].append(self._view(p, where))
            lists["grads"].append(_numpy(grad))
            for b in buffers:
                lists[b.argument].append(self._view(state[b.key], where, b.key))
            if master:
                lists["master_params"].append(self._view(state[_precision.MASTER], where, _precision.MASTER))
            if keeps_step:
                steps.append(k)
        for lists, _, _ in calls.values():
            for b in spec.buffers:
                if not lists[b.argument]:
                    lists[b.argument] = None
        block = self._step_blocks[g][0] if keeps_step and with_grad else None
        return [(spec, step, lists, kernel_h, (block, steps) if block is not None else None, first)
                for (step, *_), (lists, steps, first) in calls.items()]

    def _step_counts(self, g: int, states: list) -> list:
        """The step count of each state, as ints. Each ``state['step']`` is a 0-d view into one float32
        tensor per group (torch keeps one tensor per param), so that a step reads all counts with one
        ``tolist()`` and advances them with one add; a state whose step is another tensor (made here,
        or loaded by load_state_dict) is moved into the block first."""
        block, views = self._step_blocks.get(g, (None, []))
        if block is None or len(views) != len(states) or any(
                state.get("step") is not view for state, view in zip(states, views)):
            values = [float(state["step"]) if "step" in state else 0.0 for state in states]
            block = torch.tensor(values, dtype=torch.float32)
            views = [block[i] for i in range(len(states))]
            for state, view in zip(states, views):
                state["step"] = view
            self._step_blocks[g] = (block, views)
        return [int(c) for c in block.tolist()]


class _Steady:
    """A CPU group's step while nothing but the grads changes (the same params at the same memory,
    each with a grad, the same state entries, one step count for all; hyperparameters may change
    while the variant keeps its state buffers): the grads are gathered in C++ by data pointer
    (``fusedopt._core.TorchSteady``) and passed to a plan of the params and state, so that the step
    costs O(1) in Python however many params the group has."""

    __slots__ = ("params_list", "state_of", "spec", "hypers", "kernel_h", "present", "core", "count", "sgd_step")

    @staticmethod
    def after(opt: "FusedOptimizer", g: int, group) -> "Optional[_Steady]":
        """After a general step of group ``g``: its steady step, or None when it cannot have one (a
        param without a grad or on CUDA, mixed dtypes or step counts)."""
        params = group["params"]
        if not params or any(p.grad is None or p.device.type != "cpu" or p.dtype != params[0].dtype for p in params):
            return None
        spec = opt._spec_for(group)
        h = opt._hypers(group)
        states = [opt.state[p] for p in params]
        keeps_step = not spec.new_buffer_is_first_step
        steady = _Steady()
        if keeps_step:
            block, views = opt._step_blocks.get(g, (None, ()))
            if block is None or len(views) != len(params) or any(
                    state.get("step") is not view for state, view in zip(states, views)):
                return None
            counts = block.tolist()
            if min(counts) != max(counts):
                return None
            steady.count, steady.sgd_step, step = int(counts[0]), None, int(counts[0]) + 1
        else:  # SGD: the step is 1 until a momentum buffer exists
            have = {state.get("momentum_buffer") is not None for state in states}
            if len(have) != 1:
                return None
            steady.count, steady.sgd_step = None, 2 if True in have else 1
            step = steady.sgd_step
        kernel_h = {name: h[name] for name in spec.kernel_hypers}
        variant = spec.variant(kernel_h, step)
        buffers = spec.buffers_in(variant)
        master = opt._has_master(params[0])
        if any(state.get(b.key) is None for state in states for b in buffers) or (
                master and any(state.get(_precision.MASTER) is None for state in states)):
            return None
        memory = tuple(b.key for b in buffers) + ((_precision.MASTER,) if master else ())
        keys = memory + (("step",) if keeps_step else ())
        where = [_Where(g, j) for j in range(len(params))]
        call = (spec.rule_index, [opt._view(p, w) for p, w in zip(params, where)],
                [[opt._view(state[b.key], w, b.key) for state, w in zip(states, where)] for b in buffers],
                list(range(len(params))), [str(w) for w in where],
                [[f"state of {w}, {b.key!r}" for w in where] for b in buffers],
                [opt._view(state[_precision.MASTER], w, _precision.MASTER) for state, w in zip(states, where)]
                if master else None, [f"state of {w}, {_precision.MASTER!r}" for w in where])
        plan = _core.Plan([call], len(params))
        try:
            steady.core = _core.TorchSteady(plan, tuple(params), opt.state, tuple(states), keys, len(memory),
                                            tuple(tuple(state[k] for k in keys) for state in states), params[0].dtype,
                                            torch.strided, torch.Tensor, block.numpy() if keeps_step else None)
        except TypeError:  # a Tensor subclass overriding data_ptr or grad: the general path calls its own
            return None
        steady.params_list, steady.state_of, steady.spec = params, opt.state, spec
        values = tuple(h.values())
        steady.hypers, steady.kernel_h, steady.present = (values, tuple(map(type, values))), kernel_h, spec.present[variant]
        return steady

    def gather(self, opt: "FusedOptimizer", group, grad_scale: float = 1.0) -> Optional[tuple]:
        """This step's grads, variant and scalars; None when the group is no longer steady. Raises
        (having written nothing) when a changed hyperparameter is invalid."""
        spec = opt._spec_for(group)
        if spec is not self.spec or opt.state is not self.state_of or group["params"] is not self.params_list:
            return None
        h = opt._hypers(group)
        values = tuple(h.values())
        hypers = (values, tuple(map(type, values)))  # 1 == 1.0 == True: the types too
        if hypers != self.hypers:
            spec.check(h)
            self.hypers, self.kernel_h = hypers, {name: h[name] for name in spec.kernel_hypers}
        step = self.count + 1 if self.count is not None else self.sgd_step
        variant = spec.variant(self.kernel_h, step)
        if spec.present[variant] != self.present:
            return None
        grads = self.core.gather(group["params"], -1.0 if self.count is None else float(self.count))
        if grads is None:
            return None
        rounding = None if opt.rounding_seed is None else [_precision.rounding(opt.rounding_seed, step)]
        return grads, [variant], [spec.packed_scalars(self.kernel_h, step, grad_scale)], rounding

    def run(self, gathered: tuple) -> None:
        self.core.run(*gathered)
        if self.count is not None:
            self.count += 1


class _Where:
    """A param's name for error messages, formatted only when one is raised."""

    __slots__ = ("g", "j")

    def __init__(self, g: int, j: int):
        self.g, self.j = g, j

    def __str__(self) -> str:
        return f"param_groups[{self.g}]['params'][{self.j}]"


def _grads_of(opt: torch.optim.Optimizer) -> list:
    """NumPy views of the params' grads (those that have one), in param_groups order."""
    return [_numpy(p.grad) for group in opt.param_groups for p in group["params"] if p.grad is not None]


def _amp_grad_scale(opt) -> Optional[float]:
    """The factor on every gradient this step, or None to skip it: from ``torch.amp.GradScaler.step``,
    which sets ``opt.grad_scale`` (the loss scale, or None when already unscaled) and ``opt.found_inf``
    (nonzero: some grad is inf or NaN) on optimizers that say ``_step_supports_amp_scaling``."""
    found_inf = getattr(opt, "found_inf", None)
    if found_inf is not None and float(found_inf) != 0.0:
        return None
    scale = getattr(opt, "grad_scale", None)
    return 1.0 if scale is None else 1.0 / float(scale)


def _placed_empty(p: torch.Tensor, dtype: torch.dtype, slot: tuple) -> Optional[torch.Tensor]:
    """An uninitialised tensor like contiguous CPU param ``p``, of ``dtype``, placed as fusedopt's own
    optimizers place a param's state buffer ``slot = (k, count)`` (fusedopt.backends.cpu.placed_start);
    None for a CUDA or non-contiguous param or one under PLACED_FROM bytes (torch's allocation then)."""
    nbytes = p.numel() * dtype.itemsize
    if p.device.type != "cpu" or not p.is_contiguous() or nbytes < PLACED_FROM:
        return None
    raw = torch.empty(nbytes + PAGE, dtype=torch.uint8)
    start = placed_start(raw.data_ptr(), p.data_ptr(), slot)
    return raw[start:start + nbytes].view(dtype).view(p.shape)


def _placed_full(p: torch.Tensor, value: float, dtype: torch.dtype, slot: tuple) -> torch.Tensor:
    """torch.full_like(p, value, dtype=dtype), placed (_placed_empty) where it can be."""
    out = _placed_empty(p, dtype, slot)
    if out is None:
        return torch.full_like(p, value, memory_format=torch.preserve_format, dtype=dtype)
    return out.fill_(value)


def _placed_copy(p: torch.Tensor, dtype: torch.dtype, slot: tuple) -> torch.Tensor:
    """p's values as a new tensor of ``dtype`` (p.detach().to(dtype, copy=True)), placed where it can be."""
    out = _placed_empty(p, dtype, slot)
    if out is None:
        return p.detach().to(dtype, copy=True)
    return out.copy_(p.detach())


def _closure_loss(closure: Optional[Callable[[], Any]]):
    """What ``step(closure)`` returns: the closure's loss, evaluated with grad enabled (None without)."""
    if closure is None:
        return None
    with torch.enable_grad():
        return closure()


def _cached_view(views: Dict[int, tuple], tensor: torch.Tensor, where: "_Where", key: Optional[str] = None):
    """The NumPy view of a param or state tensor, made once and kept in ``views`` while the tensor
    keeps its memory (checked by data pointer: ``p.data = ...`` or a loaded state gives new memory)."""
    pointer = tensor.data_ptr()
    cached = views.get(id(tensor))
    if cached is not None and cached[0] is tensor and cached[1] == pointer:
        return cached[2]
    _check_param(tensor, str(where) if key is None else f"state of {where}, {key!r}")
    view = _numpy(tensor)
    views[id(tensor)] = (tensor, pointer, view)
    return view


def _check_param(p: torch.Tensor, where: str) -> None:
    """TypeError/ValueError naming a param (or state tensor) the CPU kernels cannot update in place."""
    if p.device.type not in ("cpu", "cuda"):
        raise TypeError(f"{where}: on {p.device}; fusedopt.torch runs CPU and CUDA tensors")
    if p.is_complex() or p.dtype not in _SUPPORTED_DTYPES:
        raise TypeError(f"{where}: dtype {p.dtype} is not supported; expected torch.float32 or torch.float64")
    if not p.is_contiguous():
        raise ValueError(f"{where}: must be contiguous; fusedopt updates in place and never copies")


def _check_grad(p: torch.Tensor, grad: torch.Tensor, where: str) -> None:
    if grad.is_sparse or grad.layout != torch.strided:
        raise TypeError(f"{where}: sparse gradients are not supported (as in torch.optim's dense optimizers)")
    if grad.dtype != p.dtype or grad.device != p.device:
        raise TypeError(f"{where}: grad is {grad.dtype} on {grad.device}, the param {p.dtype} on {p.device}")
    if not grad.is_contiguous():
        raise ValueError(f"{where}: its grad must be contiguous; fusedopt reads it in place and never copies")
    if grad.is_neg():
        raise ValueError(f"{where}: its grad is a lazily negated view (negative bit set); pass grad.resolve_neg(), "
                         "fusedopt reads memory as it is and never copies")


def _signature_without_torch_class(spec: Spec) -> inspect.Signature:
    """fusedopt's signature of the spec (params, then its hyperparameters) with torch's keyword-only
    switches after them, as torch.optim's classes have them."""
    from ..optim.optimizer import _signature

    own = _signature(spec)
    switches = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default)
                for name, default in (("foreach", None), ("capturable", False), ("differentiable", False),
                                      ("fused", None))]
    return inspect.Signature([inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD),
                              *own.parameters.values(), *switches])


def _optimizer_class(spec: Spec) -> type:
    torch_class = getattr(torch.optim, spec.class_name, None)
    signature = (inspect.signature(torch_class.__init__) if torch_class is not None
                 else _signature_without_torch_class(spec))

    def __init__(self, *args: Any, master_weights: bool = False, state_dtype: Any = None,
                 rounding_seed: Optional[int] = None, **kwargs: Any) -> None:
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        arguments = dict(bound.arguments)
        arguments.pop("self")
        params = arguments.pop("params")
        FusedOptimizer.__init__(self, params, arguments, master_weights, state_dtype, rounding_seed)

    options = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default)
               for name, default in _precision.OPTIONS]
    shown = signature.replace(parameters=[*signature.parameters.values(), *options])
    __init__.__signature__ = shown  # type: ignore[attr-defined]
    like = (f"the signature, defaults, state keys and update of ``torch.optim.{spec.class_name}``"
            if torch_class is not None else f"the hyperparameters, defaults and update of ``fusedopt.{spec.class_name}`` "
                                            "(torch.optim has no such class)")
    doc = (f"{spec.summary}\n\nA ``torch.optim.Optimizer`` with {like}; the step is fusedopt's fused kernel "
           f"(:func:`fusedopt.functional.{spec.name}`); the mixed-precision options after torch's are "
           f"fusedopt's (:class:`fusedopt.Optimizer`).\n\nSignature: ``{spec.class_name}{shown}``\n")
    return type(spec.class_name, (FusedOptimizer,), {"spec": spec, "torch_class": torch_class, "__init__": __init__,
                                                      "__doc__": doc, "__module__": __name__,
                                                      "__qualname__": spec.class_name})


for _spec in SPECS:
    if _spec.class_name in __all__:
        globals()[_spec.class_name] = _optimizer_class(_spec)
del _spec

def _shares_torchs_openmp_team() -> bool:
    """Whether torch runs its CPU ops on OpenMP and exactly one OpenMP runtime is loaded (Linux: the
    process's mapped libraries), so that fusedopt's OpenMP team is torch's."""
    import re

    if "parallel backend: OpenMP" not in torch.__config__.parallel_info():
        return False
    try:
        with open("/proc/self/maps") as f:
            runtimes = set(re.findall(r"\S*/lib(?:gomp|iomp5|omp)[^/\s]*\.so[^/\s]*", f.read()))
    except OSError:
        return False
    return len(runtimes) == 1


# torch's CPU ops run on the OpenMP team, whose threads spin for a while after each: fusedopt's steps
# run on that team too, instead of sharing cores with it (fusedopt.set_thread_runtime), unless the user
# chose a runtime.
from .. import _thread_runtime_chosen  # noqa: E402

if not _thread_runtime_chosen and _shares_torchs_openmp_team():
    _core._set_thread_runtime(True)

from .adafactor import Adafactor  # noqa: E402 - uses the helpers above

__all__.append("Adafactor")
