"""Mixed precision options of a step (README, "Mixed precision"): where the params' float32 master
copies are, and whether bfloat16 writes round stochastically. Every array may be float32, bfloat16
(``ml_dtypes.bfloat16``) or float16, each list in its own type, the math always in float32; float64
arrays compute in float64 and mix with float64 only."""

from __future__ import annotations

from typing import Optional, Tuple

from .._arguments import whole

LOW_PRECISION = ("bfloat16", "float16")
STATE_DTYPES = ("float32",) + LOW_PRECISION
MASTER = "master_param"  # the optimizer state key of a param's float32 master copy
# The keyword-only options of every optimizer class (fusedopt and fusedopt.torch), with their defaults.
OPTIONS = (("master_weights", False), ("state_dtype", None), ("rounding_seed", None))

# Philox counter word 2 takes the step mod 2^32, so steps past it reuse bits (after 4e9 steps).
_WORD = 1 << 64


def check_seed(seed, name: str = "rounding_seed") -> int:
    """An int in [0, 2^64): the key of the stochastic rounding bits."""
    return whole(name, seed, 0, below=_WORD)


def state_dtype(dtype) -> Optional[str]:
    """The name of a state dtype (float32, bfloat16 or float16) from a name, a NumPy dtype or a
    scalar type (``ml_dtypes.bfloat16``); None stays None (each buffer takes its param's dtype)."""
    if dtype is None:
        return None
    if isinstance(dtype, str):
        name = dtype
    else:
        import numpy as np

        try:
            name = np.dtype(dtype).name
        except TypeError:
            raise TypeError(f"state_dtype: expected a dtype or its name, got {type(dtype).__name__}") from None
    if name not in STATE_DTYPES:
        raise ValueError(f"state_dtype: expected one of {', '.join(STATE_DTYPES)}, got {name!r} (float64 params "
                         f"always keep float64 state)")
    if name == "bfloat16":
        _require_ml_dtypes("state_dtype='bfloat16'")
    return name


def _require_ml_dtypes(what: str) -> None:
    try:
        import ml_dtypes  # noqa: F401 - registers bfloat16 with NumPy
    except ImportError:
        raise ImportError(f"{what} needs ml_dtypes for NumPy's bfloat16 arrays: pip install ml_dtypes") from None


def rounding(seed: Optional[int], step: int) -> Optional[Tuple[int, int]]:
    """The kernels' ``rounding`` argument: None (to nearest) or (seed, step)."""
    return None if seed is None else (check_seed(seed), step % _WORD)
