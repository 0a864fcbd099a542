"""Plain NumPy reference of every optimizer: the oracle the kernels are tested against.

Each function takes one parameter array, its gradient and a ``state`` dict, works in float64, and
updates ``param`` and ``state`` in place, straight from the equations of DESIGN.md §3 (the
``torch.optim`` definitions). The step count ``t`` lives in ``state["step"]`` and starts at 1, as
in torch. Use it to check your own kernels::

    p = param.astype(np.float64); state = {}
    for g in grads:
        reference.adam(p, g.astype(np.float64), state, lr=1e-3)

Nothing here is fast or clever on purpose.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

__all__ = ["sgd", "adagrad", "rmsprop", "adam", "adamw", "adamax", "radam", "adadelta", "rprop", "lion", "nadam", "asgd", "lamb", "lars", "adafactor",
           "philox4x32_10", "rounding_bits", "round_bfloat16_stochastic", "to_storage", "mixed_step",
           "momentum_textbook", "nesterov_textbook",
           "fan_in_and_fan_out", "gain", "xavier_uniform_bound", "xavier_normal_std", "kaiming_std",
           "kaiming_uniform_bound", "lecun_uniform_bound", "lecun_normal_std"]


def _grad(param: np.ndarray, grad: np.ndarray, weight_decay: float, maximize: bool) -> np.ndarray:
    g = -grad if maximize else grad
    return g + weight_decay * param if weight_decay != 0 else g  # torch leaves a zero term out (0·inf is NaN)


def _decayed_grad(param, grad, lr, weight_decay, decoupled, maximize):
    """The gradient with its L2 term, or (decoupled, as AdamW) the gradient after p *= 1 − lr·wd in place."""
    if not decoupled:
        return _grad(param, grad, weight_decay, maximize)
    if weight_decay != 0:
        param *= 1 - lr * weight_decay
    return -grad if maximize else grad


def _lerp(a, b, w):
    """a + w·(b − a): torch's form of β·a + (1 − β)·b for first moments, which makes an infinite
    moment NaN at the next finite gradient (inf − inf) where the other form keeps it infinite. As torch,
    from b's side for w >= 0.5, so that w = 1 gives b exactly (Adafactor's first step)."""
    return a + w * (b - a) if w < 0.5 else b - (1 - w) * (b - a)


def _sign(x):
    """torch.sign: −1, 0 or 1, and 0 for NaN (NumPy's sign gives NaN)."""
    return np.where(x > 0, 1.0, np.where(x < 0, -1.0, 0.0))


def _next_step(state: dict) -> int:
    state["step"] = state.get("step", 0) + 1
    return state["step"]


def sgd(param, grad, state, *, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False, maximize=False):
    """b = g (first step), b = μ·b + (1−dampening)·g; g = g + μ·b (nesterov) or b; p −= lr·g."""
    _next_step(state)
    g = _grad(param, grad, weight_decay, maximize)
    if momentum != 0:
        if "momentum_buffer" not in state:
            b = g.copy()
        else:
            b = momentum * state["momentum_buffer"] + (1 - dampening) * g
        state["momentum_buffer"] = b
        g = g + momentum * b if nesterov else b
    param -= lr * g


def adagrad(param, grad, state, *, lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0,
            eps=1e-10, maximize=False):
    """clr = lr / (1 + (t−1)·lr_decay); s += g²; p −= clr·g / (√s + eps)."""
    t = _next_step(state)
    if "sum" not in state:
        state["sum"] = np.full_like(param, initial_accumulator_value)
    g = _grad(param, grad, weight_decay, maximize)
    clr = lr / (1 + (t - 1) * lr_decay)
    state["sum"] = state["sum"] + g * g
    param -= clr * g / (np.sqrt(state["sum"]) + eps)


def rmsprop(param, grad, state, *, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False,
            maximize=False):
    """v = α·v + (1−α)·g²; centered: a = α·a + (1−α)·g, ṽ = v − a²; b = μ·b + g/(√ṽ+eps), p −= lr·b."""
    _next_step(state)
    g = _grad(param, grad, weight_decay, maximize)
    v = alpha * state.get("square_avg", 0.0) + (1 - alpha) * g * g
    state["square_avg"] = v
    if centered:
        a = _lerp(state.get("grad_avg", 0.0), g, 1 - alpha)
        state["grad_avg"] = a
        v = v - a * a
    scaled = g / (np.sqrt(v) + eps)
    if momentum > 0:
        b = momentum * state.get("momentum_buffer", 0.0) + scaled
        state["momentum_buffer"] = b
        param -= lr * b
    else:
        param -= lr * scaled


def adam(param, grad, state, *, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False,
         maximize=False, decoupled_weight_decay=False):
    """m = β1·m + (1−β1)·g; v = β2·v + (1−β2)·g²; p −= lr/(1−β1^t) · m / (√v/√(1−β2^t) + eps).

    Adam adds wd·p to g; AdamW (``decoupled_weight_decay``) multiplies p by (1 − lr·wd) instead.
    """
    t = _next_step(state)
    beta1, beta2 = betas
    g = _decayed_grad(param, grad, lr, weight_decay, decoupled_weight_decay, maximize)
    m = _lerp(state.get("exp_avg", 0.0), g, 1 - beta1)
    v = beta2 * state.get("exp_avg_sq", 0.0) + (1 - beta2) * g * g
    state["exp_avg"], state["exp_avg_sq"] = m, v
    if amsgrad:
        v = np.maximum(state.get("max_exp_avg_sq", v), v)
        state["max_exp_avg_sq"] = v
    bias_correction1 = 1 - beta1**t
    bias_correction2 = 1 - beta2**t
    param -= (lr / bias_correction1) * m / (np.sqrt(v) / np.sqrt(bias_correction2) + eps)


def adamw(param, grad, state, *, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False,
          maximize=False):
    """Adam with decoupled weight decay: p *= (1 − lr·wd) first, no wd·p added to g."""
    adam(param, grad, state, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
         maximize=maximize, decoupled_weight_decay=True)


# Textbook forms (the classic lecture notation), kept to show where they meet the torch form.


def adamax(param, grad, state, *, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, maximize=False):
    """m = β1·m + (1−β1)·g; u = max(β2·u, |g| + eps); p −= lr/(1−β1^t) · m/u."""
    t = _next_step(state)
    beta1, beta2 = betas
    g = _grad(param, grad, weight_decay, maximize)
    m = _lerp(state.get("exp_avg", 0.0), g, 1 - beta1)
    u = np.maximum(beta2 * state.get("exp_inf", np.zeros_like(param)), np.abs(g) + eps)
    state["exp_avg"], state["exp_inf"] = m, u
    param -= lr / (1 - beta1**t) * m / u


def radam(param, grad, state, *, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
          decoupled_weight_decay=False, maximize=False):
    """Adam's moments; with ρ∞ = 2/(1−β2) − 1 and ρt = ρ∞ − 2t·β2^t/(1−β2^t): if ρt > 5,
    p −= lr·r·m̂·√(1−β2^t)/(√v + eps) with m̂ = m/(1−β1^t) and r the rectification term; else p −= lr·m̂."""
    t = _next_step(state)
    beta1, beta2 = betas
    g = _decayed_grad(param, grad, lr, weight_decay, decoupled_weight_decay, maximize)
    m = _lerp(state.get("exp_avg", 0.0), g, 1 - beta1)
    v = beta2 * state.get("exp_avg_sq", 0.0) + (1 - beta2) * g * g
    state["exp_avg"], state["exp_avg_sq"] = m, v
    m_hat = m / (1 - beta1**t)
    rho_inf = 2 / (1 - beta2) - 1
    rho_t = rho_inf - 2 * t * beta2**t / (1 - beta2**t)
    if rho_t > 5:
        r = np.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t))
        param -= lr * m_hat * r * np.sqrt(1 - beta2**t) / (np.sqrt(v) + eps)
    else:
        param -= lr * m_hat


def adadelta(param, grad, state, *, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0, maximize=False):
    """v = ρ·v + (1−ρ)·g²; Δ = √(u + eps)/√(v + eps)·g; u = ρ·u + (1−ρ)·Δ²; p −= lr·Δ."""
    _next_step(state)
    g = _grad(param, grad, weight_decay, maximize)
    v = rho * state.get("square_avg", 0.0) + (1 - rho) * g * g
    delta = np.sqrt(state.get("acc_delta", 0.0) + eps) / np.sqrt(v + eps) * g
    state["square_avg"] = v
    state["acc_delta"] = rho * state.get("acc_delta", 0.0) + (1 - rho) * delta * delta
    param -= lr * delta


def rprop(param, grad, state, *, lr=1e-2, etas=(0.5, 1.2), step_sizes=(1e-6, 50.0), maximize=False):
    """f = η+ / η− / 1 as g·g_prev > 0 / < 0 / otherwise (NaN too); s = clamp(s·f, min, max);
    g = 0 where f = η−; p −= sign(g)·s with torch's sign (0 for NaN); g_prev = g. s starts at lr,
    g_prev at 0."""
    _next_step(state)
    etaminus, etaplus = etas
    g = -grad if maximize else grad.copy()
    product = g * state.get("prev", np.zeros_like(param))
    factor = np.where(product > 0, etaplus, np.where(product < 0, etaminus, 1.0))
    step_size = np.clip(state.get("step_size", np.full_like(param, lr)) * factor, *step_sizes)
    g = np.where(product < 0, 0.0, g)
    param -= _sign(g) * step_size
    state["prev"], state["step_size"] = g, step_size


def lion(param, grad, state, *, lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0, maximize=False):
    """c = β1·m + (1−β1)·g; p = p·(1 − lr·wd) − lr·sign(c); m = β2·m + (1−β2)·g."""
    _next_step(state)
    beta1, beta2 = betas
    g = -grad if maximize else grad
    m = state.get("exp_avg", np.zeros_like(param))
    c = beta1 * m + (1 - beta1) * g
    param *= 1 - lr * weight_decay
    param -= lr * _sign(c)
    state["exp_avg"] = beta2 * m + (1 - beta2) * g


def nadam(param, grad, state, *, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, momentum_decay=4e-3,
          decoupled_weight_decay=False, maximize=False):
    """μt = β1·(1 − ½·0.96^(tψ)), Πt = μ1…μt; Adam's m, v; d = √(v/(1−β2^t)) + eps;
    p −= lr·(1−μt)/(1−Πt)·g/d + lr·μt+1/(1−Πt·μt+1)·m/d."""
    t = _next_step(state)
    beta1, beta2 = betas
    g = _decayed_grad(param, grad, lr, weight_decay, decoupled_weight_decay, maximize)
    mu = beta1 * (1 - 0.5 * 0.96 ** (t * momentum_decay))
    mu_next = beta1 * (1 - 0.5 * 0.96 ** ((t + 1) * momentum_decay))
    product = 1.0
    for i in range(1, t + 1):
        if product < 1e-300:  # every factor is below β1 < 1: 1 − Π is 1 long before (any t, even 2**63)
            break
        product *= beta1 * (1 - 0.5 * 0.96 ** (i * momentum_decay))
    m = _lerp(state.get("exp_avg", 0.0), g, 1 - beta1)
    v = beta2 * state.get("exp_avg_sq", 0.0) + (1 - beta2) * g * g
    state["exp_avg"], state["exp_avg_sq"] = m, v
    d = np.sqrt(v / (1 - beta2**t)) + eps
    param -= lr * (1 - mu) / (1 - product) * g / d + lr * mu_next / (1 - product * mu_next) * m / d


def asgd(param, grad, state, *, lr=1e-2, lambd=1e-4, alpha=0.75, t0=1e6, weight_decay=0.0, maximize=False):
    """η = lr/(1 + λ·lr·(t−1))^α, μ = 1/max(1, t−1−t0) (torch's eta and mu from the step before);
    p = p·(1 − λη) − η·g; ax += μ·(p − ax) if μ ≠ 1 else ax = p."""
    t = _next_step(state)
    g = _grad(param, grad, weight_decay, maximize)
    eta = lr / (1 + lambd * lr * (t - 1)) ** alpha
    mu = 1 / max(1, t - 1 - t0)
    param *= 1 - lambd * eta
    param -= eta * g
    ax = state.get("ax", np.zeros_like(param))
    state["ax"] = ax + mu * (param - ax) if mu != 1 else param.copy()


def _trust_ratio(p_norm, u_norm, ratio):
    """optax's scale_by_trust_ratio: the ratio, or 1 where either norm is 0."""
    return 1.0 if p_norm == 0 or u_norm == 0 else ratio


def lamb(param, grad, state, *, lr=1e-3, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.0, maximize=False):
    """Adam's m, v; u = m̂/(√v̂ + eps) + wd·p; r = ‖p‖/‖u‖ (1 if a norm is 0); p −= lr·r·u (optax.lamb)."""
    t = _next_step(state)
    beta1, beta2 = betas
    g = -grad if maximize else grad
    m = beta1 * state.get("exp_avg", 0.0) + (1 - beta1) * g
    v = beta2 * state.get("exp_avg_sq", 0.0) + (1 - beta2) * g * g
    state["exp_avg"], state["exp_avg_sq"] = m, v
    u = (m / (1 - beta1**t)) / (np.sqrt(v / (1 - beta2**t)) + eps)
    if weight_decay != 0:
        u = u + weight_decay * param
    p_norm, u_norm = np.sqrt(np.sum(param * param)), np.sqrt(np.sum(u * u))
    param -= lr * _trust_ratio(p_norm, u_norm, p_norm / u_norm if u_norm else 1.0) * u


def lars(param, grad, state, *, lr, momentum=0.9, weight_decay=0.0, trust_coefficient=1e-3, eps=0.0, nesterov=False,
         trust_ratio=True, maximize=False):
    """u = g + wd·p; r = η·‖p‖/(‖u‖ + eps) (1 if a norm is 0, or without trust_ratio);
    b = μ·b − lr·r·u (from 0); p += b, or p += μ·b − lr·r·u with nesterov (optax.lars)."""
    _next_step(state)
    g = -grad if maximize else grad
    u = g + weight_decay * param if weight_decay != 0 else g
    r = 1.0
    if trust_ratio:
        p_norm, u_norm = np.sqrt(np.sum(param * param)), np.sqrt(np.sum(u * u))
        r = _trust_ratio(p_norm, u_norm, trust_coefficient * p_norm / (u_norm + eps) if u_norm + eps else 1.0)
    step = -lr * r * u
    b = momentum * state.get("momentum_buffer", np.zeros_like(param)) + step
    state["momentum_buffer"] = b
    param += momentum * b + step if nesterov else b


def adafactor(param, grad, state, *, lr=1e-2, beta2_decay=-0.8, eps=(None, 1e-3), d=1.0, weight_decay=0.0,
              maximize=False, eps1_dtype=None, store=None):
    """torch.optim.Adafactor: row and column factors R, C for 2+ dims (V̂ = R·C/max(mean R, eps1)), else
    V̂ = lerp(V̂, g², t^decay); U = g/√max(V̂, eps1²); p = (1 − lr·wd)·p − α/max(1, RMS(U)/d)·U with
    α = max(eps2, RMS(p))·min(lr, 1/√t). eps1 None: the machine epsilon of ``eps1_dtype`` (the dtype
    the kernel runs in; default the param's). ``store``: what storing a state array does to it (16-bit
    state: rounding to its type), applied to R, C and V̂ before they are used, as a kernel that reads
    back what it stored uses them."""
    store = store or (lambda x: x)
    t = _next_step(state)
    eps1, eps2 = eps
    if eps1 is None:
        eps1 = float(np.finfo(eps1_dtype or param.dtype).eps)
    if param.size == 0:  # nothing to update (torch divides by zero here); the state is made, and stays zero
        keys = ("row_var", "col_var") if param.ndim >= 2 else ("variance",)
        shapes = (param.shape[:-1] + (1,), param.shape[:-2] + (1, param.shape[-1])) if param.ndim >= 2 else (param.shape,)
        for key, shape in zip(keys, shapes):
            state.setdefault(key, np.zeros(shape))
        return
    g = -grad if maximize else grad
    weight = t**beta2_decay
    alpha = max(eps2, float(np.sqrt(np.sum(param * param))) / param.size**0.5) * min(lr, 1 / t**0.5)
    if weight_decay != 0:
        param *= 1 - lr * weight_decay
    if param.ndim >= 2:
        rows = store(_lerp(state.get("row_var", 0.0), np.mean(g * g, axis=-1, keepdims=True), weight))
        cols = store(_lerp(state.get("col_var", 0.0), np.mean(g * g, axis=-2, keepdims=True), weight))
        state["row_var"], state["col_var"] = rows, cols
        v = rows * cols / np.maximum(np.mean(rows, axis=-2, keepdims=True), eps1)
    else:
        v = state["variance"] = store(_lerp(state.get("variance", 0.0), g * g, weight))
    u = g / np.sqrt(np.maximum(v, eps1 * eps1))
    param -= alpha / max(1.0, float(np.sqrt(np.sum(u * u))) / (u.size**0.5 * d)) * u


# --- mixed precision: 16-bit storage, master copies, stochastic rounding ---------------------------

_ROUNDING_KEY_DOMAIN = 0x534E4452  # the kernels' kRoundingKeyDomain (cpu/mixed.hpp)


def philox4x32_10(counter, key):
    """Philox4x32-10 (Salmon et al., SC'11) over NumPy arrays: ``counter`` four uint32 arrays (or
    ints), ``key`` two ints; returns the four output words as uint32 arrays."""
    c = [np.asarray(w, dtype=np.uint64) & 0xFFFFFFFF for w in counter]
    k0, k1 = np.uint64(key[0] & 0xFFFFFFFF), np.uint64(key[1] & 0xFFFFFFFF)
    mask = np.uint64(0xFFFFFFFF)
    for round_ in range(10):
        if round_ > 0:
            k0, k1 = (k0 + np.uint64(0x9E3779B9)) & mask, (k1 + np.uint64(0xBB67AE85)) & mask
        p0 = np.uint64(0xD2511F53) * c[0]
        p1 = np.uint64(0xCD9E8D57) * c[2]
        c = [((p1 >> np.uint64(32)) ^ c[1] ^ k0) & mask, p1 & mask, ((p0 >> np.uint64(32)) ^ c[3] ^ k1) & mask,
             p0 & mask]
    return [w.astype(np.uint32) for w in c]


def rounding_bits(seed: int, step: int, tensor_id: int, size: int):
    """The 16-bit random fields of stochastic rounding for elements 0..size-1 of one tensor: element
    i takes words 2(i mod 2) and 2(i mod 2)+1 of Philox with counter (i/2 mod 2^32, i/2 div 2^32,
    step, tensor id) and key (seed mod 2^32, seed div 2^32 xor 0x534E4452). Field f (0: the param,
    1, 2, 3: the rule's state slots in order) is bits 16(f mod 2) of word f div 2. Returns the four
    fields, uint32 arrays."""
    i = np.arange(size, dtype=np.uint64)
    pair = i >> np.uint64(1)
    words = philox4x32_10([pair & np.uint64(0xFFFFFFFF), pair >> np.uint64(32), step & 0xFFFFFFFF, tensor_id],
                          [seed & 0xFFFFFFFF, (seed >> 32) ^ _ROUNDING_KEY_DOMAIN])
    odd = (i & np.uint64(1)).astype(bool)
    low, high = np.where(odd, words[2], words[0]), np.where(odd, words[3], words[1])
    return [low & 0xFFFF, low >> 16, high & 0xFFFF, high >> 16]


def round_bfloat16_stochastic(x32: np.ndarray, random16: np.ndarray) -> np.ndarray:
    """float32 values to bfloat16 bits (uint16), stochastically: the value between two bfloat16
    neighbours rounds away from zero when its 16 dropped bits plus the random field reach 2^16, i.e.
    with probability (dropped bits)/2^16; NaN stays a (quiet) NaN."""
    bits = np.asarray(x32, dtype=np.float32).view(np.uint32).astype(np.uint64)
    down = bits >> np.uint64(16)
    up = (bits & np.uint64(0xFFFF)) + np.asarray(random16, dtype=np.uint64) >= np.uint64(0x10000)
    out = (down + up.astype(np.uint64)).astype(np.uint16)
    nan = np.isnan(x32)
    return np.where(nan, (down | np.uint64(0x40)).astype(np.uint16), out)


def to_storage(x64: np.ndarray, dtype, random16=None) -> np.ndarray:
    """float64 values rounded to float32, then to storage ``dtype`` (float32, bfloat16, float16): to
    nearest even, or with ``random16`` stochastically (bfloat16)."""
    x32 = np.asarray(x64, dtype=np.float64).astype(np.float32)
    dtype = np.dtype(dtype)
    if random16 is not None:
        assert dtype.name == "bfloat16", "stochastic rounding is for bfloat16"
        return round_bfloat16_stochastic(x32, random16).view(dtype)
    return x32.astype(dtype)


def mixed_step(fn: Callable, param: np.ndarray, grad: np.ndarray, state: dict, *, master=None,
               rounding_seed=None, tensor_id: int = 0, state_keys=(), state_dtype=None, **hyper) -> None:
    """One step of reference optimizer ``fn`` on arrays stored in 16-bit types, in place: ``param``,
    ``grad``, the buffers of ``state`` named in ``state_keys`` (in the rule's slot order) and
    ``master`` (a float32 copy of the param) are read as float64; ``fn`` takes its float64 step;
    then each array the step writes is rounded back to its own dtype: to nearest, or with
    ``rounding_seed`` stochastically for bfloat16 (the bits of :func:`rounding_bits` for the step and
    ``tensor_id``). With a master copy the step starts from it, the copy is rounded to float32 and the
    param to nearest from the copy. Buffers not yet in ``state`` start as ``fn`` starts them and are
    stored in ``state_dtype`` (default: the param's)."""
    p64 = (master if master is not None else param).astype(np.float64)
    ref_state = {"step": state.get("step", 0)}
    for key in state_keys:
        if key in state:
            ref_state[key] = np.asarray(state[key]).astype(np.float64)
    fn(p64, np.asarray(grad).astype(np.float64), ref_state, **hyper)
    step = ref_state["step"]
    fields = (rounding_bits(rounding_seed, step, tensor_id, param.size) if rounding_seed is not None else None)

    def rounded(x64, like, field):
        stochastic = fields is not None and np.dtype(like.dtype).name == "bfloat16"
        return to_storage(np.reshape(x64, like.shape), like.dtype, fields[field].reshape(like.shape) if stochastic else None)

    if master is not None:
        master[...] = p64.astype(np.float32)
        param[...] = master.astype(param.dtype)
    else:
        param[...] = rounded(p64, param, 0)
    state["step"] = step
    for field, key in enumerate(state_keys, start=1):
        if key in ref_state:
            like = state[key] if key in state else np.empty(param.shape, state_dtype or param.dtype)
            state[key] = rounded(ref_state[key], like, field)


def momentum_textbook(param, grad, state, *, lr, momentum):
    """Heavy ball as usually taught: v = μ·v − lr·g; p += v.

    Equal to ``sgd(momentum=μ, dampening=0)`` while lr is constant (v = −lr·b); when lr changes,
    torch's form rescales the whole buffer by the new lr and this one does not.
    """
    v = momentum * state.get("velocity", 0.0) - lr * grad
    state["velocity"] = v
    param += v


def nesterov_textbook(param, grad_fn: Callable[[np.ndarray], np.ndarray], state, *, lr, momentum):
    """Nesterov with a look-ahead gradient: v = μ·v − lr·∇f(θ + μ·v); θ += v.

    With φ = θ + μ·v this is ``sgd(nesterov=True)`` on φ for a constant lr, so ``param`` here is θ
    and the torch form's parameter is θ + μ·v.
    """
    v_old = state.get("velocity", np.zeros_like(param))
    v = momentum * v_old - lr * grad_fn(param + momentum * v_old)
    state["velocity"] = v
    param += v


# Initializers: the statistics side (bound or std of each distribution), straight from the
# torch.nn.init documentation, for shape (out, in, *kernel) or, with layout="in_out", (*kernel, in, out).


def fan_in_and_fan_out(shape, layout="out_in"):
    receptive = int(np.prod(shape[2:])) if layout == "out_in" else int(np.prod(shape[:-2]))
    fan_in = (shape[1] if layout == "out_in" else shape[-2]) * receptive
    fan_out = (shape[0] if layout == "out_in" else shape[-1]) * receptive
    return fan_in, fan_out


def gain(nonlinearity, param=None):
    table = {"linear": 1.0, "sigmoid": 1.0, "conv1d": 1.0, "conv2d": 1.0, "conv3d": 1.0, "tanh": 5.0 / 3,
             "relu": np.sqrt(2.0), "selu": 0.75}
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        return float(np.sqrt(2.0 / (1 + slope * slope)))
    return float(table[nonlinearity])


def xavier_uniform_bound(shape, gain_=1.0, layout="out_in"):
    fan_in, fan_out = fan_in_and_fan_out(shape, layout)
    return gain_ * np.sqrt(6.0 / (fan_in + fan_out))


def xavier_normal_std(shape, gain_=1.0, layout="out_in"):
    fan_in, fan_out = fan_in_and_fan_out(shape, layout)
    return gain_ * np.sqrt(2.0 / (fan_in + fan_out))


def kaiming_std(shape, a=0.0, mode="fan_in", nonlinearity="leaky_relu", layout="out_in"):
    fan = fan_in_and_fan_out(shape, layout)[0 if mode == "fan_in" else 1]
    return gain(nonlinearity, a) / np.sqrt(fan)


def kaiming_uniform_bound(shape, a=0.0, mode="fan_in", nonlinearity="leaky_relu", layout="out_in"):
    return np.sqrt(3.0) * kaiming_std(shape, a, mode, nonlinearity, layout)


def lecun_uniform_bound(shape, layout="out_in"):
    return np.sqrt(3.0 / fan_in_and_fan_out(shape, layout)[0])


def lecun_normal_std(shape, layout="out_in"):
    return np.sqrt(1.0 / fan_in_and_fan_out(shape, layout)[0])
