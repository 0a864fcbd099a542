"""The initializers, in place (trailing underscore), with ``torch.nn.init`` semantics."""

from __future__ import annotations

import math
import numbers
from typing import Optional

import numpy as np

from . import _fill
from .fans import calculate_gain, fans
from .generator import Generator

# JAX/Keras truncated normal: cut at ±2σ, σ divided by the std of a standard normal truncated there.
TRUNCATED_STD_CORRECTION = 0.87962566103423978


def _real(name, value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isnan(value):
        raise (TypeError if not isinstance(value, numbers.Real) or isinstance(value, bool) else ValueError)(
            f"{name}: expected a real number, got {value!r}")
    return float(value)


def _positive_std(std) -> float:
    std = _real("std", std)
    if not 0 <= std < math.inf:
        raise ValueError(f"std: expected a finite value >= 0, got {std!r}")
    return std


def zeros_(tensor: np.ndarray) -> np.ndarray:
    """Fills with 0."""
    return constant_(tensor, 0.0)


def ones_(tensor: np.ndarray) -> np.ndarray:
    """Fills with 1."""
    return constant_(tensor, 1.0)


def constant_(tensor: np.ndarray, val: float) -> np.ndarray:
    """Fills with ``val``."""
    val = _real("val", val) if not (isinstance(val, float) and math.isinf(val)) else val
    _fill.check_target(tensor)
    _fill.assign(tensor, val)
    return tensor


def uniform_(tensor: np.ndarray, a: float = 0.0, b: float = 1.0, *, generator: Optional[Generator] = None,
             seed: Optional[int] = None) -> np.ndarray:
    """U[a, b): x = a + (b − a)·u with u from the top 24 (float) or 53 (double) bits of Philox
    output; no value equals b (values just below b are clamped to the largest one below it)."""
    a, b = _real("a", a), _real("b", b)
    if not (math.isfinite(a) and math.isfinite(b) and a < b):
        raise ValueError(f"a, b: expected finite a < b, got a={a!r}, b={b!r}")
    return _fill.fill(tensor, _fill.UNIFORM, a=a, b=b, generator=generator, seed=seed)


def normal_(tensor: np.ndarray, mean: float = 0.0, std: float = 1.0, *, generator: Optional[Generator] = None,
            seed: Optional[int] = None) -> np.ndarray:
    """N(mean, std²) by Box–Muller: r = √(−2 ln u1), u1 ∈ (0, 1]; z = r·cos 2πu2 and r·sin 2πu2.
    With 24-bit uniforms (float outputs) |z| ≤ 5.77; with 53-bit (float64) |z| ≤ 8.57."""
    mean, std = _real("mean", mean), _positive_std(std)
    return _fill.fill(tensor, _fill.NORMAL, mean=mean, std=std, generator=generator, seed=seed)


def trunc_normal_(tensor: np.ndarray, mean: float = 0.0, std: float = 1.0, a: float = -2.0, b: float = 2.0, *,
                  generator: Optional[Generator] = None, seed: Optional[int] = None) -> np.ndarray:
    """N(mean, std²) truncated to [a, b] (absolute bounds, as torch), by the inverse CDF:
    y ~ U(erf(α/√2), erf(β/√2)), x = mean + std·√2·erfinv(y), α = (a − mean)/std, β = (b − mean)/std.
    erfinv is Giles' single-precision approximation (relative error about 4e−7)."""
    mean, std, a, b = _real("mean", mean), _positive_std(std), _real("a", a), _real("b", b)
    if not (math.isfinite(a) and math.isfinite(b) and a < b):
        raise ValueError(f"a, b: expected finite a < b, got a={a!r}, b={b!r}")
    if std == 0:
        raise ValueError("std: a truncated normal needs std > 0")
    return _fill.fill(tensor, _fill.TRUNCATED, a=a, b=b, mean=mean, std=std, generator=generator, seed=seed)


def _normal_or_truncated(tensor, std, truncated, generator, seed):
    if truncated:
        std = std / TRUNCATED_STD_CORRECTION
        if std == 0:
            return zeros_(tensor)
        return trunc_normal_(tensor, 0.0, std, -2 * std, 2 * std, generator=generator, seed=seed)
    return normal_(tensor, 0.0, std, generator=generator, seed=seed)


def xavier_uniform_(tensor: np.ndarray, gain: float = 1.0, *, layout: str = "out_in",
                    generator: Optional[Generator] = None, seed: Optional[int] = None) -> np.ndarray:
    """Glorot uniform: U(−bound, bound), bound = gain·√(6 / (fan_in + fan_out))."""
    fan_in, fan_out = fans(_fill.check_target(tensor).shape, layout)
    bound = _real("gain", gain) * math.sqrt(6.0 / (fan_in + fan_out))
    return _symmetric_uniform(tensor, bound, generator, seed)


def xavier_normal_(tensor: np.ndarray, gain: float = 1.0, *, layout: str = "out_in", truncated: bool = False,
                   generator: Optional[Generator] = None, seed: Optional[int] = None) -> np.ndarray:
    """Glorot normal: N(0, std²), std = gain·√(2 / (fan_in + fan_out)); ``truncated`` as JAX."""
    fan_in, fan_out = fans(_fill.check_target(tensor).shape, layout)
    std = _real("gain", gain) * math.sqrt(2.0 / (fan_in + fan_out))
    return _normal_or_truncated(tensor, std, truncated, generator, seed)


def _kaiming_std(tensor, a, mode, nonlinearity, layout):
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode: expected 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = fans(_fill.check_target(tensor).shape, layout)
    fan = fan_in if mode == "fan_in" else fan_out
    if fan == 0:
        raise ValueError(f"tensor: {mode} is 0 for shape {tuple(tensor.shape)}")
    return calculate_gain(nonlinearity, a) / math.sqrt(fan)


def kaiming_uniform_(tensor: np.ndarray, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu", *,
                     layout: str = "out_in", generator: Optional[Generator] = None,
                     seed: Optional[int] = None) -> np.ndarray:
    """He uniform: U(−bound, bound), bound = gain·√(3 / fan), gain = calculate_gain(nonlinearity, a)."""
    std = _kaiming_std(tensor, a, mode, nonlinearity, layout)
    return _symmetric_uniform(tensor, math.sqrt(3.0) * std, generator, seed)


def kaiming_normal_(tensor: np.ndarray, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu", *,
                    layout: str = "out_in", truncated: bool = False, generator: Optional[Generator] = None,
                    seed: Optional[int] = None) -> np.ndarray:
    """He normal: N(0, std²), std = gain / √fan; ``truncated`` as JAX's he_normal."""
    std = _kaiming_std(tensor, a, mode, nonlinearity, layout)
    return _normal_or_truncated(tensor, std, truncated, generator, seed)


def lecun_uniform_(tensor: np.ndarray, *, layout: str = "out_in", generator: Optional[Generator] = None,
                   seed: Optional[int] = None) -> np.ndarray:
    """LeCun uniform: U(−bound, bound), bound = √(3 / fan_in)."""
    fan_in, _ = fans(_fill.check_target(tensor).shape, layout)
    return _symmetric_uniform(tensor, math.sqrt(3.0 / fan_in), generator, seed)


def lecun_normal_(tensor: np.ndarray, *, layout: str = "out_in", truncated: bool = False,
                  generator: Optional[Generator] = None, seed: Optional[int] = None) -> np.ndarray:
    """LeCun normal: N(0, 1/fan_in); ``truncated=True`` is JAX's lecun_normal."""
    fan_in, _ = fans(_fill.check_target(tensor).shape, layout)
    return _normal_or_truncated(tensor, math.sqrt(1.0 / fan_in), truncated, generator, seed)


def _symmetric_uniform(tensor, bound, generator, seed):
    if bound == 0:
        return zeros_(tensor)
    return uniform_(tensor, -bound, bound, generator=generator, seed=seed)


def eye_(tensor: np.ndarray) -> np.ndarray:
    """The identity in a 2-D array (ones on the diagonal)."""
    view = _fill.check_target(tensor)
    if view.ndim != 2:
        raise ValueError(f"tensor: eye_ needs 2 dimensions, got shape {view.shape}")
    _fill.assign(tensor, np.eye(*view.shape))
    return tensor


def orthogonal_(tensor: np.ndarray, gain: float = 1.0, *, generator: Optional[Generator] = None,
                seed: Optional[int] = None) -> np.ndarray:
    """A (semi-)orthogonal matrix times gain, as torch: QR of a normal (rows, numel/rows) sample,
    Q's columns signed by diag(R)."""
    view = _fill.check_target(tensor)
    if view.ndim < 2:
        raise ValueError(f"tensor: orthogonal_ needs at least 2 dimensions, got shape {view.shape}")
    gain = _real("gain", gain)
    rows = view.shape[0]
    cols = view.size // rows if rows else 0
    if view.size == 0:
        return tensor
    flat = normal_(np.empty((rows, cols), np.float64), generator=generator, seed=seed)
    if rows < cols:
        flat = flat.T
    q, r = np.linalg.qr(flat)
    q *= np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    _fill.assign(tensor, (gain * q).reshape(view.shape))
    return tensor
