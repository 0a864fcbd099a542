"""fusedopt for JAX: optax-style gradient transformations whose math is fusedopt's fused kernels.

    import optax, fusedopt.jax
    tx = fusedopt.jax.adam(lr=1e-3)                  # an optax.GradientTransformation
    state = tx.init(params)                          # params: any pytree of arrays
    updates, state = tx.update(grads, state, params)
    params = optax.apply_updates(params, updates)

One function per optimizer of fusedopt.functional but Adafactor (``sgd, adagrad, rmsprop, adam, adamw,
nadam, radam, adamax, adadelta, rprop, asgd, lion, lamb, lars``), with that
optimizer's hyperparameters, names and defaults (torch's: ``lr``, ``betas``, ...); ``lr`` may be a
schedule, a callable of the step count (from 0, as optax's). The algorithms are torch's, and where optax
implements the same one the numbers agree: ``adam``, ``adamw`` (optax's default ``weight_decay`` is 1e-4,
torch's 1e-2) and ``sgd`` with momentum or Nesterov (dampening 0). They differ from optax's ``adagrad``
and ``rmsprop``, which put ``eps`` inside the square root, and from ``optax.amsgrad``, which keeps the
maximum of the bias-corrected second moment (torch, and so ``adam(amsgrad=True)`` here, the uncorrected).

The step is one XLA custom call to the same CPU kernel as ``fusedopt.functional`` (the CPU target of
XLA's original custom-call API, ``cpp/src/xla_step.cpp``), so ``update`` runs eagerly or inside
``jax.jit``. JAX arrays are immutable: the new params and state are the call's outputs, which alias its
inputs, so XLA copies the params and state into them first unless they were donated
(``jax.jit(step, donate_argnums=...)``), and then the kernel updates them in place; the old state stays
valid when it was not donated. ``updates = new - old`` (exact whenever new and old are within a factor of
2, as a small step is). The scalars of a step (bias corrections, a scheduled ``lr``) are computed on the
host from the step count, by the same Python code as ``fusedopt.functional``'s: the custom call calls
it back under the GIL with the step and lr the computation holds (traced values inside ``jax.jit``),
and picks the kernel's variant (SGD's first step, RAdam's rectification) from them too. CPU arrays only,
float32 (float64 with ``jax_enable_x64``); not ``jax.vmap``.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Dict, List, NamedTuple, Sequence, Tuple

import numpy as np

from ..functional import SPECS
from ..functional._spec import REQUIRED, Spec

__all__ = [spec.name for spec in SPECS] + ["FusedState"]


class FusedState(NamedTuple):
    """``count``: steps taken (an int, or a traced integer inside ``jax.jit``); ``buffers``: state buffer
    name (torch's key) -> pytree of arrays like the params."""

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
        scheduled = callable(h["lr"])
        spec.check({**h, "lr": 0.0} if scheduled else h)
        key = len(_TRANSFORMATIONS)
        kept = _kept_buffers(spec, h)
        _TRANSFORMATIONS.append((spec, h, scheduled, kept))

        def init(params) -> FusedState:
            import jax

            leaves = jax.tree_util.tree_leaves(params)
            for i, leaf in enumerate(leaves):
                if np.dtype(leaf.dtype) not in (np.float32, np.float64):
                    raise TypeError(f"params leaf {i}: dtype {leaf.dtype} is not supported; expected float32 or float64")
            buffers = {}
            for b in kept:
                value = spec.initial_value(b, h)
                buffers[b.key] = jax.tree_util.tree_map(
                    lambda p, v=value: np.full(np.shape(p), v, dtype=np.dtype(p.dtype)), params)
            return FusedState(0, buffers)

        def update(grads, state: FusedState, params=None):
            import jax

            if params is None:
                raise ValueError(f"fusedopt.jax.{spec.name}: update needs params (the kernels compute the new params)")
            p_leaves, treedef = jax.tree_util.tree_flatten(params)
            g_leaves = treedef.flatten_up_to(grads)
            buffers = {b.key: treedef.flatten_up_to(state.buffers[b.key]) for b in kept}
            leaves = [state.count, *p_leaves, *g_leaves, *(a for v in buffers.values() for a in v)]
            traced = any(isinstance(x, jax.core.Tracer) for x in leaves)
            lr = h["lr"](state.count) if scheduled else None  # (a schedule in plain Python works when eager)
            # called eagerly: the whole update as one jitted computation (compiled once per layout)
            updates, new_buffers = (_updates if traced else _jitted_updates(key))(key, state.count, lr, p_leaves,
                                                                                 g_leaves, buffers)
            return treedef.unflatten(updates), FusedState(state.count + 1,
                                                          {k: treedef.unflatten(v) for k, v in new_buffers.items()})

        return _transformation(init, update)

    factory.__name__ = factory.__qualname__ = spec.name
    factory.__doc__ = (f"{spec.summary} As an optax GradientTransformation; hyperparameters and defaults of "
                       f":func:`fusedopt.functional.{spec.name}` (lr may be a schedule of the step count).")
    return factory


def _kept_buffers(spec: Spec, h: Dict[str, Any]):
    """The state buffers these hyperparameters use (a buffer's flag, amsgrad, centered or momentum,
    depends on them alone): the others are not kept."""
    flags = spec.flags({name: (0.0 if name == "lr" and callable(h[name]) else h[name]) for name in spec.kernel_hypers}, 1)
    return tuple(b for b in spec.buffers if b.when is None or flags[b.when])


def _updates(key: int, count, lr, params: Sequence, grads: Sequence, buffers: Dict[str, List]):
    """updates = new - old of the params, and the new state lists."""
    new_p, new_buffers = _step(key, count, lr, params, grads, buffers)
    return [n - o for n, o in zip(new_p, params)], new_buffers


@functools.lru_cache(maxsize=None)
def _jitted_updates(key: int):
    import jax

    return jax.jit(_updates, static_argnums=0)


_TARGET = "fusedopt_step"  # the XLA custom-call target (cpp/src/xla_step.cpp)
# Each transformation made: (spec, its hyperparameters, whether lr is a schedule, the state buffers kept).
_TRANSFORMATIONS: List[Tuple[Spec, Dict[str, Any], bool, tuple]] = []


def _scalars_for(key: int, step: int, lr) -> Tuple[bytes, int]:
    """Called by the custom call (cpp/src/xla_step.cpp) at each step: the rule's scalars and variant
    for this step and lr (None: the hyperparameters' own), as fusedopt.functional computes them."""
    spec, h, _, _ = _TRANSFORMATIONS[key]
    kernel_h = {name: (h[name] if name != "lr" or lr is None else lr) for name in spec.kernel_hypers}
    return spec.packed_scalars(kernel_h, step), spec.variant(kernel_h, step)


@functools.lru_cache(maxsize=None)
def _register() -> None:
    import jax

    from .. import _core

    if not hasattr(jax, "ffi"):
        raise ImportError(f"fusedopt.jax needs jax.ffi (JAX 0.5 or newer); this is JAX {jax.__version__}")
    _core.set_xla_scalars(_scalars_for)
    jax.ffi.register_ffi_target(_TARGET, _core.xla_step_target(), platform="cpu", api_version=0)


def _step(key: int, count, lr, params: Sequence, grads: Sequence,
          buffers: Dict[str, List]) -> Tuple[List, Dict[str, List]]:
    """One custom call: inputs (the step, lr, params, grads, the kept state lists), outputs the new params
    and state lists, each aliasing its input; the kernel's variant is chosen at run time from the step.
    lr: the schedule's value at this count, or None when lr is a number."""
    import jax
    import jax.numpy as jnp

    spec, h, scheduled, kept = _TRANSFORMATIONS[key]
    if not params:
        return [], buffers
    _register()
    dtype = params[0].dtype
    for i, (p, g) in enumerate(zip(params, grads)):
        platforms = {d.platform for d in p.devices()} if isinstance(p, jax.Array) and not isinstance(
            p, jax.core.Tracer) else {"cpu"}
        if platforms != {"cpu"}:
            raise TypeError(f"params leaf {i}: on {sorted(platforms)}; fusedopt.jax runs its kernels on the CPU "
                            "(fusedopt's CUDA kernels take CuPy arrays: fusedopt.Adam and the rest)")
        if p.dtype != dtype or np.dtype(p.dtype) not in (np.float32, np.float64):
            raise TypeError(f"params leaf {i}: dtype {p.dtype}; every leaf must be float32 (or every leaf float64)")
        if tuple(g.shape) != tuple(p.shape):
            raise ValueError(f"grads leaf {i}: shape {tuple(g.shape)} does not match the param's {tuple(p.shape)}")
    for name, arrays in buffers.items():
        for i, (a, p) in enumerate(zip(arrays, params)):
            if tuple(a.shape) != tuple(p.shape) or a.dtype != dtype:
                raise ValueError(f"state {name!r} leaf {i}: {tuple(a.shape)} {a.dtype} does not match the param's "
                                 f"{tuple(p.shape)} {dtype}")
    lr = jnp.asarray(lr) if scheduled else jnp.float32(0.0)
    lr_type = 0 if not scheduled else 2 if lr.dtype == np.float64 else 1
    if lr_type == 1 and lr.dtype != np.float32:
        lr = lr.astype(np.float32)
    lists = [params, [jnp.asarray(g, dtype) for g in grads]] + [buffers[b.key] for b in kept]
    n = len(params)
    written = [lists[0]] + lists[2:]
    slots = 0b11 | sum(1 << (2 + k) for k, b in enumerate(spec.buffers) if b in kept)  # the rule's slots passed
    layout = " ".join(map(str, [key, spec.rule_index, 0 if dtype == np.float32 else 1, lr_type, n, slots]
                                + [int(np.prod(p.shape, dtype=np.int64)) for p in params]))
    outputs = [jax.ShapeDtypeStruct(a.shape, a.dtype) for arrays in written for a in arrays]
    aliases = {2 + (0 if k == 0 else k + 1) * n + i: k * n + i for k in range(len(written)) for i in range(n)}
    call = jax.ffi.ffi_call(_TARGET, outputs, custom_call_api_version=3, legacy_backend_config=layout,
                            input_output_aliases=aliases, has_side_effect=False)
    out = call(jnp.asarray(count + 1, jnp.int32), lr, *[jnp.asarray(a) for arrays in lists for a in arrays])
    new_buffers = {b.key: list(out[(k + 1) * n:(k + 2) * n]) for k, b in enumerate(kept)}
    return list(out[:n]), new_buffers


for _spec in SPECS:
    globals()[_spec.name] = _make(_spec)
del _spec
