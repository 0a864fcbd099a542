"""fusedopt for PyTorch: drop-in ``torch.optim`` optimizers whose step is fusedopt's fused kernel.

    import fusedopt.torch
    opt = fusedopt.torch.Adam(model.parameters(), lr=1e-3)   # a real torch.optim.Optimizer
    loss.backward(); opt.step(); opt.zero_grad()

Each class (``SGD, Adagrad, RMSprop, Adam, AdamW``, one per spec of fusedopt.functional) subclasses
``torch.optim.Optimizer`` with the constructor signature of the torch class of the same name, reads
``p.grad``, keeps its state under torch's keys (``step`` as a float32 tensor, ``exp_avg``, ...), so that
``state_dict()`` crosses to and from ``torch.optim`` both ways, and works with ``lr_scheduler``,
``torch.amp.GradScaler``, ``zero_grad``, closures and the step/state-dict hooks.

CPU tensors go to the C++ kernels as NumPy views of their memory (no copy: the param's data pointer
does not change). CUDA tensors go to the CUDA kernels as CuPy views, launched on torch's current stream
of their device, so a step is ordered after the backward pass that wrote the grads (this path has not
run on a GPU yet). Not yet: an O(1) host cost per step (the step loops over the params in Python, as
torch's single-tensor path does), bfloat16/float16 params (issue 16).

torch-only switches: ``foreach`` and ``fused`` are accepted and change nothing (the step is always one
fused pass); ``capturable=True`` and ``differentiable=True`` are refused; Adam's
``decoupled_weight_decay=True`` is AdamW. Tensor hyperparameters (``lr=torch.tensor(0.01)``) are read
as numbers at each step.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Dict, List, Optional

import torch

from ..functional import SPECS
from ..functional._spec import Spec, run
from ..functional.adam import ADAMW

# One class per spec whose torch.optim class gives the signature (an optimizer torch lacks: not yet).
__all__ = [spec.class_name for spec in SPECS if hasattr(torch.optim, spec.class_name)]

_SUPPORTED_DTYPES = (torch.float32, torch.float64)
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


def _numpy(tensor: torch.Tensor):
    """The NumPy view of a CPU tensor's memory, or the CuPy view of a CUDA tensor's (writes go to the
    tensor; no copy either way)."""
    if tensor.is_cuda:
        from ..backends.cuda import as_cupy

        return as_cupy("tensor", tensor.detach())  # detached: torch refuses the CUDA array interface otherwise
    try:
        return tensor.numpy()
    except RuntimeError:  # a tensor that requires grad (a param, or a grad made with create_graph=True)
        return tensor.detach().numpy()


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

    def __init__(self, params, defaults: Dict[str, Any]) -> None:
        for switch, (harmless, why) in _REFUSED_SWITCHES.items():
            if defaults.get(switch, harmless) != harmless:
                raise ValueError(f"{switch}={defaults[switch]!r}: {why}")
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
                    for b in self.spec.buffers:
                        state[b.key] = torch.full_like(p, self.spec.initial_value(b, h),
                                                       memory_format=torch.preserve_format)

    def _spec_for(self, group) -> Spec:
        return ADAMW if self.spec.name == "adam" and group.get("decoupled_weight_decay") else self.spec

    def _hypers(self, group) -> Dict[str, Any]:
        return {name: _plain(name, group[name]) for name in self.spec.hyper_names}

    @torch.no_grad()
    def step(self, closure: Optional[Callable[[], Any]] = None):
        """One fused step of every param that has a ``.grad`` (the others are skipped, as torch
        skips them). Returns the closure's loss when a closure is given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        work = [self._prepare(g, group) for g, group in enumerate(self.param_groups)]
        for prepared in work:  # every group checked and its state made before any is updated
            for spec, step, lists, h, advance, first in prepared:
                with _on_torch_stream(first):
                    run(spec, lists["params"], lists["grads"], lists, step, h)
                if advance is not None:
                    block, indices = advance  # indices None: every count of the block
                    if indices is None or len(indices) == len(block):
                        block += 1.0
                    else:
                        block[indices] += 1.0
        return loss

    def _view(self, tensor: torch.Tensor, where: "_Where", key: Optional[str] = None):
        """The NumPy view of a param or state tensor, made once and kept while the tensor keeps its
        memory (checked by data pointer: ``p.data = ...`` or a loaded state gives new memory)."""
        pointer = tensor.data_ptr()
        cached = self._views.get(id(tensor))
        if cached is not None and cached[0] is tensor and cached[1] == pointer:
            return cached[2]
        _check_param(tensor, str(where) if key is None else f"state of {where}, {key!r}")
        view = _numpy(tensor)
        self._views[id(tensor)] = (tensor, pointer, view)
        return view

    def _prepare(self, g: int, group: Dict[str, Any]) -> list:
        """The group's params with a gradient, checked, cut by step count into functional calls:
        (spec, step, lists of NumPy views, kernel hyperparameters, the step tensors to advance, a
        tensor of the call's device). A steady group (the same params, all with grads, the same state
        tensors and hyperparameters as last step) reuses last step's lists and only takes new grads."""
        steady = self._steady.get(g)
        if steady is not None:
            prepared = steady.prepare(self, group)
            if prepared is not None:
                return prepared
            del self._steady[g]
        prepared = self._prepare_anew(g, group)
        steady = _Steady.after(self, g, group, prepared)
        if steady is not None:
            self._steady[g] = steady
        return prepared

    def _prepare_anew(self, g: int, group: Dict[str, Any]) -> list:
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
            if grad.layout is not torch.strided or grad.dtype is not p.dtype or not grad.is_contiguous():
                _check_grad(p, grad, str(where))
            if keeps_step:
                step = counts[k] + 1
            else:  # SGD: a momentum buffer that does not exist yet starts at the gradient (step 1)
                step = 1 if state.get("momentum_buffer") is None else 2
            buffers = buffers_at.get(step)
            if buffers is None:
                buffers = buffers_at[step] = spec.buffers_in(spec.variant(h, step))
            for b in buffers:
                if state.get(b.key) is None:
                    state[b.key] = torch.full_like(p, spec.initial_value(b, h), memory_format=torch.preserve_format)
            key = (step, p.device)  # one fused call per step count and device
            if key not in calls:
                calls[key] = ({"params": [], "grads": [], **{b.argument: [] for b in spec.buffers}}, [], p)
            lists, steps, _ = calls[key]
            lists["params"].append(self._view(p, where))
            lists["grads"].append(_numpy(grad))
            for b in buffers:
                lists[b.argument].append(self._view(state[b.key], where, b.key))
            if keeps_step:
                steps.append(k)
        for lists, _, _ in calls.values():
            for b in spec.buffers:
                if not lists[b.argument]:
                    lists[b.argument] = None
        block = self._step_blocks[g][0] if keeps_step and with_grad else None
        return [(spec, step, lists, kernel_h, (block, steps) if block is not None else None, first)
                for (step, _), (lists, steps, first) in calls.items()]

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
    """A group's last prepared step, reusable while nothing but the grads has changed: the same
    param objects at the same memory, each with a grad, the same state dicts and state tensors, the
    same hyperparameters, one step count for all."""

    __slots__ = ("params_list", "params", "pointers", "states", "hypers", "call", "block", "sgd_step")

    @staticmethod
    def after(opt: "FusedOptimizer", g: int, group, prepared: list) -> "Optional[_Steady]":
        params = group["params"]
        if len(prepared) != 1 or any(p.grad is None for p in params):
            return None
        spec, step, lists, h, advance, first = prepared[0]
        keeps_step = advance is not None
        if not keeps_step and step == 1:  # SGD's first step: the next one uses the new buffers
            return None
        steady = _Steady()
        steady.params_list, steady.params = params, tuple(params)
        steady.pointers = tuple(p.data_ptr() for p in params)
        buffers = spec.buffers_in(spec.variant(opt._hypers(group), step))
        steady.states = tuple((opt.state[p], tuple((b.key, opt.state[p][b.key]) for b in buffers)
                               + ((("step", opt.state[p]["step"]),) if keeps_step else ())) for p in params)
        steady.hypers = opt._checked.get(g)
        steady.call = (spec, lists, h, first)
        steady.block = advance[0] if keeps_step else None
        steady.sgd_step = None if keeps_step else step
        return steady

    def prepare(self, opt: "FusedOptimizer", group) -> Optional[list]:
        params = group["params"]
        if params is not self.params_list or len(params) != len(self.params):
            return None
        h = opt._hypers(group)
        spec, lists, kernel_h, first = self.call
        if (spec.name, tuple(h.values()), tuple(map(type, h.values()))) != self.hypers:
            return None
        if spec.flags_use_step or spec is not opt._spec_for(group):
            return None
        grads = []
        state_of = opt.state
        for p, pointer, (state, tensors) in zip(self.params, self.pointers, self.states):
            grad = p.grad
            if grad is None or state_of.get(p) is not state or p.data_ptr() != pointer:
                return None
            for key, tensor in tensors:
                if state.get(key) is not tensor:
                    return None
            if grad.layout is not torch.strided or grad.dtype is not p.dtype or not grad.is_contiguous():
                return None  # the full path names the problem
            grads.append(_numpy(grad))
        if self.block is not None:
            counts = self.block.tolist()
            if min(counts) != max(counts):
                return None
            step = int(counts[0]) + 1
            advance = (self.block, None)
        else:
            step, advance = self.sgd_step, None
        return [(spec, step, {**lists, "grads": grads}, kernel_h, advance, first)]


class _Where:
    """A param's name for error messages, formatted only when one is raised."""

    __slots__ = ("g", "j")

    def __init__(self, g: int, j: int):
        self.g, self.j = g, j

    def __str__(self) -> str:
        return f"param_groups[{self.g}]['params'][{self.j}]"


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


def _optimizer_class(spec: Spec) -> type:
    torch_class = getattr(torch.optim, spec.class_name, None)
    if torch_class is None:
        raise NotImplementedError(f"{spec.class_name}: no torch.optim class to take the signature from")
    signature = inspect.signature(torch_class.__init__)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        arguments = dict(bound.arguments)
        arguments.pop("self")
        params = arguments.pop("params")
        FusedOptimizer.__init__(self, params, arguments)

    __init__.__signature__ = signature  # type: ignore[attr-defined]
    doc = (f"{spec.summary}\n\nA ``torch.optim.Optimizer`` with the signature, defaults, state keys and update of "
           f"``torch.optim.{spec.class_name}``; the step is fusedopt's fused kernel "
           f"(:func:`fusedopt.functional.{spec.name}`).\n\nSignature: ``{spec.class_name}{signature}``\n")
    return type(spec.class_name, (FusedOptimizer,), {"spec": spec, "torch_class": torch_class, "__init__": __init__,
                                                      "__doc__": doc, "__module__": __name__,
                                                      "__qualname__": spec.class_name})


for _spec in SPECS:
    if _spec.class_name in __all__:
        globals()[_spec.class_name] = _optimizer_class(_spec)
del _spec
