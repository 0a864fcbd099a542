"""fusedopt for JAX: optax-style gradient transformations whose math is fusedopt's fused kernels.

    import optax, fusedopt.jax
    tx = fusedopt.jax.adam(lr=1e-3)                  # an optax.GradientTransformation
    state = tx.init(params)                          # params: any pytree of arrays
    updates, state = tx.update(grads, state, params)
    params = optax.apply_updates(params, updates)

One function per optimizer of fusedopt.functional (``sgd, adagrad, rmsprop, adam, adamw``), with that
optimizer's hyperparameters, names and defaults (torch's: ``lr``, ``betas``, ...); ``lr`` may be a
schedule, a callable of the step count (from 0, as optax's). The algorithms are torch's, and where optax
implements the same one the numbers agree: ``adam``, ``adamw`` (optax's default ``weight_decay`` is 1e-4,
torch's 1e-2) and ``sgd`` with momentum or Nesterov (dampening 0). They differ from optax's ``adagrad``
and ``rmsprop``, which put ``eps`` inside the square root, and from ``optax.amsgrad``, which keeps the
maximum of the bias-corrected second moment (torch, and so ``adam(amsgrad=True)`` here, the uncorrected).

JAX arrays are immutable and the kernels update in place, so every ``update`` copies the params and the
state to host NumPy arrays, runs the fused step on the copies, and returns ``updates = new - old`` (exact
whenever new and old are within a factor of 2, as a small step is) and a new state (the old one stays
valid). It runs on the host: it cannot be traced by ``jax.jit``; call it between jitted steps.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, NamedTuple

import numpy as np

from ..functional import SPECS
from ..functional._spec import REQUIRED, Spec, run

__all__ = [spec.name for spec in SPECS] + ["FusedState"]


class FusedState(NamedTuple):
    """``count``: steps taken; ``buffers``: state buffer name (torch's key) -> pytree of NumPy arrays."""

    count: int
    buffers: Dict[str, Any]


def _transformation(init, update):
    try:
        import optax
    except ImportError:  # optax is optional: the same two fields
        return _GradientTransformation(init, update)
    return optax.GradientTransformation(init, update)


class _GradientTransformation(NamedTuple):
    init: Callable
    update: Callable


def _make(spec: Spec) -> Callable[..., Any]:
    def factory(**hypers: Any):
        unknown = set(hypers) - set(spec.hyper_names)
        if unknown:
            raise TypeError(f"fusedopt.jax.{spec.name}: unknown hyperparameter {sorted(unknown)[0]!r} "
                            f"(expected {', '.join(spec.hyper_names)})")
        h = {**spec.defaults, **hypers}
        for name, value in h.items():
            if value is REQUIRED:
                raise TypeError(f"{name}: required (no default, as in torch.optim.{spec.class_name})")
        schedule = h["lr"] if callable(h["lr"]) else None
        spec.check({**h, "lr": 0.0} if schedule is not None else h)

        def init(params) -> FusedState:
            import jax

            leaves = jax.tree_util.tree_leaves(params)
            for i, leaf in enumerate(leaves):
                if np.dtype(leaf.dtype) not in (np.float32, np.float64):
                    raise TypeError(f"params leaf {i}: dtype {leaf.dtype} is not supported; expected float32 or float64")
            buffers = {}
            for b in spec.buffers:
                value = spec.initial_value(b, h)
                buffers[b.key] = jax.tree_util.tree_map(
                    lambda p, v=value: np.full(np.shape(p), v, dtype=np.dtype(p.dtype)), params)
            return FusedState(0, buffers)

        def update(grads, state: FusedState, params=None):
            import jax
            import jax.numpy as jnp

            if params is None:
                raise ValueError(f"fusedopt.jax.{spec.name}: update needs params (the kernels compute the new params)")
            p_leaves, treedef = jax.tree_util.tree_flatten(params)
            g_leaves = treedef.flatten_up_to(grads)
            step = state.count + 1
            hs = dict(h)
            if schedule is not None:
                hs["lr"] = float(schedule(state.count))
            kernel_h = {name: hs[name] for name in spec.kernel_hypers}
            new_p = [np.array(p, copy=True) for p in p_leaves]
            old_p = [np.asarray(p) for p in p_leaves]
            lists: Dict[str, Any] = {"params": new_p, "grads": [np.asarray(g, dtype=p.dtype) for g, p in
                                                                zip(g_leaves, new_p)]}
            new_buffers = {}
            for b in spec.buffers:
                copies = [np.array(x, copy=True) for x in treedef.flatten_up_to(state.buffers[b.key])]
                lists[b.argument] = copies
                new_buffers[b.key] = treedef.unflatten(copies)
            if new_p:
                run(spec, new_p, lists["grads"], lists, step, kernel_h)
            updates = treedef.unflatten([jnp.asarray(n - o) for n, o in zip(new_p, old_p)])
            return updates, FusedState(step, new_buffers)

        return _transformation(init, update)

    factory.__name__ = factory.__qualname__ = spec.name
    factory.__doc__ = (f"{spec.summary} As an optax GradientTransformation; hyperparameters and defaults of "
                       f":func:`fusedopt.functional.{spec.name}` (lr may be a schedule of the step count).")
    return factory


for _spec in SPECS:
    globals()[_spec.name] = _make(_spec)
del _spec
