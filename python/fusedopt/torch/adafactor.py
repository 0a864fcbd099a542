"""``fusedopt.torch.Adafactor``: torch.optim.Adafactor's signature, state keys (``step``, ``row_var``
and ``col_var`` for a param of 2 or more dims, ``variance`` for the others) and update, stepped by
fusedopt's fused Adafactor (one call for every param with a grad, all groups together). CPU tensors
only: CUDA tensors are refused (``fusedopt.Adafactor`` takes CUDA arrays; this adapter does not route
them yet). Every step gathers the params in
Python (O(params)); the elementwise classes' steady path is not here yet."""

from __future__ import annotations

from typing import Any, Callable, Dict, Optional, Tuple

import torch

from .. import _core
from ..functional._scaling import ScaledStep, scaled_step_factor
from ..functional.adafactor import ADAFACTOR
from ..optim.adafactor import _STATE_KEY, _named
from . import _amp_grad_scale, _cached_view, _check_grad, _closure_loss, _grads_of, _check_param, _numpy, _plain, _Where


class Adafactor(torch.optim.Optimizer):
    __doc__ = (f"{ADAFACTOR.summary}\n\nA ``torch.optim.Optimizer`` with the signature, defaults, state keys and "
               "update of ``torch.optim.Adafactor``; the step is fusedopt's fused kernel "
               "(:func:`fusedopt.functional.adafactor`). ``foreach`` is accepted and changes nothing.\n")
    spec = ADAFACTOR
    torch_class = getattr(torch.optim, "Adafactor", None)

    def __init__(self, params, lr: float = 1e-2, beta2_decay: float = -0.8,
                 eps: Tuple[Optional[float], float] = (None, 1e-3), d: float = 1.0, weight_decay: float = 0.0, *,
                 foreach: Optional[bool] = None, maximize: bool = False) -> None:
        defaults = dict(lr=lr, beta2_decay=beta2_decay, eps=eps, d=d, weight_decay=weight_decay, foreach=foreach,
                        maximize=maximize)
        ADAFACTOR.check(self._hypers(defaults))
        self._views: Dict[int, tuple] = {}  # id(tensor) -> (tensor, data pointer, NumPy view)
        self._packed: Dict[tuple, bytes] = {}  # (hyperparameters, step, dtype) -> the kernel's scalars
        self._valid: set = set()  # hyperparameters found valid
        super().__init__(params, defaults)

    @staticmethod
    def _hypers(group) -> Dict[str, Any]:
        """The kernel's hyperparameters of a group: numbers for 1-element tensors, tuples for lists."""
        return {name: _plain(name, tuple(group[name]) if isinstance(group[name], list) else group[name])
                for name in ADAFACTOR.hyper_names}

    @torch.no_grad()
    def step(self, closure: Optional[Callable[[], Any]] = None):
        """One fused step of every param that has a ``.grad`` (the others are skipped, as torch
        skips them). Returns the closure's loss when a closure is given."""
        loss = _closure_loss(closure)
        grad_scale = _amp_grad_scale(self)
        if grad_scale is not None:
            self._step(grad_scale)
        return loss

    _step_supports_amp_scaling = True  # as the other classes (fusedopt.torch.FusedOptimizer)

    @torch.no_grad()
    def scaled_step(self, *, loss_scale: float = 1.0, max_norm: Optional[float] = None) -> ScaledStep:
        """Loss scaling, global norm clipping and the step, as ``FusedOptimizer.scaled_step``."""
        report, grad_scale = scaled_step_factor(_grads_of(self), loss_scale, max_norm)
        if not report.skipped:
            self._step(grad_scale)
        return report

    def _step(self, grad_scale: float) -> None:
        created: list = []
        try:
            self._gather_and_run(created, grad_scale)
        except Exception:
            for p in created:  # bad input changes nothing: not even the state a first step made
                self.state.pop(p, None)
            raise

    def _gather_and_run(self, created: list, grad_scale: float) -> None:
        lists: Dict[str, list] = {k: [] for k in ("params", "grads", "row_vars", "col_vars", "variances")}
        scalars, steps, names = [], [], []
        packed = self._packed
        if len(packed) > 1024:  # a schedule changing lr every step: keep the caches small
            packed.clear()
            self._valid.clear()
        for g, group in enumerate(self.param_groups):
            h = self._hypers(group)
            values = tuple(h.values())
            hypers = (values, tuple(map(type, values)))  # 1 == 1.0 == True: the types too
            if hypers not in self._valid:
                ADAFACTOR.check(h)
                self._valid.add(hypers)
            for j, p in enumerate(group["params"]):
                grad = p.grad
                if grad is None:
                    continue
                where = _Where(g, j)
                view = _cached_view(self._views, p, where)
                if p.is_cuda:
                    raise NotImplementedError(f"{where}: fusedopt.torch.Adafactor takes CPU tensors only for now "
                                              "(fusedopt.Adafactor takes CUDA arrays, CuPy's or torch's)")
                if (grad.layout is not torch.strided or grad.dtype is not p.dtype or not grad.is_contiguous()
                        or grad.is_neg()):
                    _check_grad(p, grad, str(where))
                state = self.state[p]
                if len(state) == 0:
                    created.append(p)
                    state["step"] = torch.tensor(0.0, dtype=torch.float32)
                    for b in ADAFACTOR.buffers:
                        shape = ADAFACTOR.buffer_shape(b.key, p.shape)
                        if shape is not None:
                            state[b.key] = p.new_zeros(shape)
                step = int(state["step"]) + 1
                key = (hypers, step, p.dtype, grad_scale)
                if key not in packed:
                    packed[key] = ADAFACTOR.packed_scalars(h, step, _numpy_dtype(p.dtype), grad_scale)
                scalars.append(packed[key])
                lists["params"].append(view)
                lists["grads"].append(_numpy(grad))
                for argument, state_key in (("row_vars", "row_var"), ("col_vars", "col_var"),
                                            ("variances", "variance")):
                    buffer = state.get(state_key)
                    lists[argument].append(None if buffer is None else _cached_view(self._views, buffer, where,
                                                                                     state_key))
                steps.append(state["step"])
                names.append(where)
        if not steps:
            return

        def describe(argument: str, k: int) -> str:
            if argument == "params":
                return str(names[k])
            return f"the grad of {names[k]}" if argument == "grads" else \
                f"state of {names[k]}, {_STATE_KEY[argument]!r}"

        try:
            _core.adafactor_step(*lists.values(), scalars)
        except (TypeError, ValueError) as e:
            raise type(e)(_named(str(e), describe)) from None
        for count in steps:
            count += 1


def _numpy_dtype(dtype: torch.dtype):
    import numpy as np

    return np.float64 if dtype == torch.float64 else np.float32
