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
does not change). Not yet: CUDA tensors (a clear TypeError; the CUDA path must launch on torch's current
stream), an O(1) host cost per step (the step loops over the params in Python, as torch's single-tensor
path does), bfloat16/float16 params (issue 16).

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

__all__ = [spec.class_name for spec in SPECS]

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
    """The NumPy view of a CPU tensor's memory (writes go to the tensor)."""
    return tensor.detach().numpy()


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
        super().__init__(params, defaults)

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
            for spec, step, lists, h, steps in prepared:
                run(spec, lists["params"], lists["grads"], lists, step, h)
                if steps:
                    torch._foreach_add_(steps, 1.0)
        return loss

    def _prepare(self, g: int, group: Dict[str, Any]) -> list:
        """The group's params with a gradient, checked, cut by step count into functional calls:
        (spec, step, lists of NumPy views, kernel hyperparameters, the step tensors to advance)."""
        spec = self._spec_for(group)
        h = self._hypers(group)
        checked = (spec.name, tuple(h.values()), tuple(map(type, h.values())))  # 1 == 1.0 == True: types too
        if self._checked.get(g) != checked:
            spec.check(h)
            self._checked[g] = checked
        kernel_h = {name: h[name] for name in spec.kernel_hypers}
        keeps_step = not spec.new_buffer_is_first_step  # torch's SGD keeps no step count
        calls: Dict[int, tuple] = {}
        for j, p in enumerate(group["params"]):
            grad = p.grad
            if grad is None:
                continue
            where = f"param_groups[{g}]['params'][{j}]"
            _check(p, grad, where)
            state = self.state[p]
            if keeps_step:
                if "step" not in state:
                    state["step"] = torch.tensor(0.0, dtype=torch.float32)
                step = int(state["step"].item()) + 1
            else:  # SGD: a momentum buffer that does not exist yet starts at the gradient (step 1)
                step = 1 if state.get("momentum_buffer") is None else 2
            buffers = spec.buffers_in(spec.variant(h, step))
            for b in buffers:
                if state.get(b.key) is None:
                    state[b.key] = torch.full_like(p, spec.initial_value(b, h), memory_format=torch.preserve_format)
            if step not in calls:
                calls[step] = ({"params": [], "grads": [], **{b.argument: [] for b in spec.buffers}}, [])
            lists, steps = calls[step]
            lists["params"].append(_numpy(p))
            lists["grads"].append(_numpy(grad))
            for b in buffers:
                lists[b.argument].append(_numpy(state[b.key]))
            if keeps_step:
                steps.append(state["step"])
        for lists, _ in calls.values():
            for b in spec.buffers:
                if not lists[b.argument]:
                    lists[b.argument] = None
        return [(spec, step, lists, kernel_h, steps) for step, (lists, steps) in calls.items()]


def _check(p: torch.Tensor, grad: torch.Tensor, where: str) -> None:
    """TypeError/ValueError naming the param for what the CPU kernels cannot take in place."""
    if p.device.type != "cpu":
        raise TypeError(f"{where}: on {p.device}; fusedopt.torch runs CPU tensors for now (CUDA: not yet)")
    if p.is_complex() or p.dtype not in _SUPPORTED_DTYPES:
        raise TypeError(f"{where}: dtype {p.dtype} is not supported; expected torch.float32 or torch.float64")
    if grad.is_sparse or grad.layout != torch.strided:
        raise TypeError(f"{where}: sparse gradients are not supported (as in torch.optim's dense optimizers)")
    if grad.dtype != p.dtype or grad.device != p.device:
        raise TypeError(f"{where}: grad is {grad.dtype} on {grad.device}, the param {p.dtype} on {p.device}")
    if not p.is_contiguous() or not grad.is_contiguous():
        raise ValueError(f"{where}: the param and its grad must be contiguous; fusedopt updates in place and "
                         "never copies")


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
    globals()[_spec.class_name] = _optimizer_class(_spec)
del _spec
