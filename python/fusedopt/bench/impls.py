"""The implementations a benchmark compares, each over its own copy of the same initial data:
``fusedopt``, ``numpy`` (in-place ufuncs, the best plain NumPy can do) and ``torch`` variants."""

from __future__ import annotations

from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np

import fusedopt

from .tables import TORCH_CLASS, TORCH_FUSED


class Impl:
    """One implementation: ``step()`` runs one optimizer step; ``params`` are its arrays (NumPy views)."""

    def __init__(self, step: Callable[[], None], params: List[np.ndarray]):
        self.step = step
        self.params = params


def make_data(shapes: Sequence[Tuple[int, ...]], dtype, seed: int = 0):
    rng = np.random.default_rng(seed)
    params = [rng.standard_normal(s, dtype=np.float32).astype(dtype) for s in shapes]
    grads = [rng.standard_normal(s, dtype=np.float32).astype(dtype) for s in shapes]
    return params, grads


def fusedopt_impl(optimizer, kwargs, params, grads) -> Impl:
    params = [p.copy() for p in params]
    opt = getattr(fusedopt, TORCH_CLASS[optimizer])(params, **kwargs)
    grads = list(grads)
    return Impl(lambda: opt.step(grads), params)


def torch_impl(optimizer, kwargs, params, grads, variant: str) -> Optional[Impl]:
    """variant: "default" (foreach=False), "foreach" or "fused"; None if torch lacks it."""
    import torch

    if (variant == "fused" and optimizer not in TORCH_FUSED) or not hasattr(torch.optim, TORCH_CLASS[optimizer]):
        return None
    tensors = [torch.from_numpy(p.copy()).requires_grad_(True) for p in params]
    for t, g in zip(tensors, grads):
        t.grad = torch.from_numpy(g.copy())
    flags = {"default": dict(foreach=False), "foreach": dict(foreach=True), "fused": dict(fused=True)}[variant]
    opt = getattr(torch.optim, TORCH_CLASS[optimizer])(tensors, **kwargs, **flags)
    return Impl(opt.step, [t.detach().numpy() for t in tensors])


def fusedopt_torch_impl(optimizer, kwargs, params, grads) -> Optional[Impl]:
    """fusedopt through the PyTorch adapter: the whole ``optimizer.step()`` of fusedopt.torch; None
    for an optimizer the adapter has no class for."""
    import torch

    import fusedopt.torch as ft

    if TORCH_CLASS[optimizer] not in ft.__all__:
        return None

    tensors = [torch.from_numpy(p.copy()).requires_grad_(True) for p in params]
    for t, g in zip(tensors, grads):
        t.grad = torch.from_numpy(g.copy())
    opt = getattr(ft, TORCH_CLASS[optimizer])(tensors, **kwargs)
    return Impl(opt.step, [t.detach().numpy() for t in tensors])


def numpy_impl(optimizer, kwargs, params, grads) -> Optional[Impl]:
    """Plain NumPy with in-place ufuncs and one scratch array per tensor (no per-step allocation);
    None for an optimizer without one here."""
    if optimizer not in NUMPY_STEPS:
        return None
    params = [p.copy() for p in params]
    step_fn = NUMPY_STEPS[optimizer]
    states = [dict() for _ in params]
    scratch = [np.empty_like(p) for p in params]
    counter = [0]

    def step():
        counter[0] += 1
        for p, g, s, tmp in zip(params, grads, states, scratch):
            step_fn(p, g, s, tmp, counter[0], **kwargs)

    return Impl(step, params)


def _np_sgd(p, g, s, tmp, t, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False, maximize=False):
    assert weight_decay == 0 and not maximize and not nesterov
    if momentum == 0:
        np.multiply(g, lr, out=tmp)
        p -= tmp
        return
    if "b" not in s:
        s["b"] = g.copy()
    else:
        s["b"] *= momentum
        np.multiply(g, 1 - dampening, out=tmp)
        s["b"] += tmp
    np.multiply(s["b"], lr, out=tmp)
    p -= tmp


def _np_adagrad(p, g, s, tmp, t, lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10,
                maximize=False):
    assert weight_decay == 0 and not maximize
    if "sum" not in s:
        s["sum"] = np.full_like(p, initial_accumulator_value)
    clr = lr / (1 + (t - 1) * lr_decay)
    np.multiply(g, g, out=tmp)
    s["sum"] += tmp
    np.sqrt(s["sum"], out=tmp)
    tmp += eps
    np.divide(g, tmp, out=tmp)
    tmp *= clr
    p -= tmp


def _np_rmsprop(p, g, s, tmp, t, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False,
                maximize=False):
    assert weight_decay == 0 and not maximize and not centered and momentum == 0
    if "v" not in s:
        s["v"] = np.zeros_like(p)
    v = s["v"]
    v *= alpha
    np.multiply(g, g, out=tmp)
    tmp *= 1 - alpha
    v += tmp
    np.sqrt(v, out=tmp)
    tmp += eps
    np.divide(g, tmp, out=tmp)
    tmp *= lr
    p -= tmp


def _np_adam(p, g, s, tmp, t, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False, maximize=False,
             decoupled=False):
    assert not amsgrad and not maximize
    beta1, beta2 = betas
    if "m" not in s:
        s["m"], s["v"] = np.zeros_like(p), np.zeros_like(p)
    m, v = s["m"], s["v"]
    if decoupled:
        p *= 1 - lr * weight_decay
    else:
        assert weight_decay == 0
    m *= beta1
    np.multiply(g, 1 - beta1, out=tmp)
    m += tmp
    v *= beta2
    np.multiply(g, g, out=tmp)
    tmp *= 1 - beta2
    v += tmp
    np.sqrt(v, out=tmp)
    tmp /= np.sqrt(1 - beta2**t)
    tmp += eps
    np.divide(m, tmp, out=tmp)
    tmp *= lr / (1 - beta1**t)
    p -= tmp


def _np_adamw(p, g, s, tmp, t, weight_decay=1e-2, **kw):
    _np_adam(p, g, s, tmp, t, weight_decay=weight_decay, decoupled=True, **kw)


NUMPY_STEPS = {"sgd": _np_sgd, "adagrad": _np_adagrad, "rmsprop": _np_rmsprop, "adam": _np_adam, "adamw": _np_adamw}
