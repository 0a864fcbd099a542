"""The benchmark tables, derived from the optimizer specs (fusedopt.functional.SPECS), and the helpers
shared by the CPU and GPU cases (suite.py, gpu.py): shapes, rows, the initializers' sanity check."""

from __future__ import annotations

import math
from typing import Callable, List, Optional

import numpy as np

from .. import functional, init, reference
from . import harness

SPECS = {spec.name: spec for spec in functional.SPECS}
OPTIMIZERS = {name: dict(spec.bench) for name, spec in SPECS.items()}  # the benchmarks' hyperparameters
TORCH_CLASS = {name: spec.class_name for name, spec in SPECS.items()}
TORCH_FUSED = {name for name, spec in SPECS.items() if spec.torch_fused}  # torch has fused=True for these
REFERENCE = {name: getattr(reference, name) for name in SPECS}


def state_buffers(optimizer: str, kwargs: dict) -> int:
    """The state buffers a step with these hyperparameters reads and writes (its rule variant's)."""
    spec = SPECS[optimizer]
    h = {**{k: v for k, v in spec.defaults.items()}, **kwargs}
    return len(spec.buffers_in(spec.variant(h, 2)))


def bytes_per_param(optimizer: str, kwargs: dict, itemsize: int) -> int:
    """The byte model: each state buffer is read and written once, p read and written, g read; a
    two-pass rule (LAMB, LARS with its trust ratio) adds the traffic of its norm pass."""
    spec = SPECS[optimizer]
    h = {**spec.defaults, **kwargs}
    norm_pass = spec.norm_pass_traffic if h.get("trust_ratio", True) else 0
    return itemsize * (3 + 2 * state_buffers(optimizer, kwargs) + norm_pass)


def model_shapes(total: int, count: int = 200, seed: int = 0):
    """A model-like list: sizes log-uniform over three decades, scaled to ~total elements."""
    rng = np.random.default_rng(seed)
    sizes = np.exp(rng.uniform(np.log(1e3), np.log(1e6), count))
    sizes = np.maximum(1, np.round(sizes * total / sizes.sum())).astype(int)
    return [(int(s),) for s in sizes]


def weight_shape(n: int):
    """The 2-D weight an initializer case fills: (n / 1000, 1000), or (1, n) below 1000."""
    return (max(1, n // 1000), 1000) if n >= 1000 else (1, n)


def fusedopt_fill(name: str, out, generator) -> Callable[[], object]:
    return {"uniform": lambda: init.uniform_(out, generator=generator),
            "normal": lambda: init.normal_(out, generator=generator),
            "kaiming_uniform": lambda: init.kaiming_uniform_(out, generator=generator),
            "xavier_normal": lambda: init.xavier_normal_(out, generator=generator)}[name]


def torch_fill(name: str, t) -> Callable[[], object]:
    import torch

    return {"uniform": lambda: t.uniform_(), "normal": lambda: t.normal_(),
            "kaiming_uniform": lambda: torch.nn.init.kaiming_uniform_(t, a=0),
            "xavier_normal": lambda: torch.nn.init.xavier_normal_(t)}[name]


def fill_looks_right(name: str, shape, sample: np.ndarray) -> bool:
    """Mean and std of a sample (float64, every 7th value) against the initializer's, within 6σ."""
    fan_in, fan_out = shape[1], shape[0]
    mean, std = {"uniform": (0.5, math.sqrt(1 / 12)), "normal": (0.0, 1.0),
                 "kaiming_uniform": (0.0, math.sqrt(2.0 / fan_in)),
                 "xavier_normal": (0.0, math.sqrt(2.0 / (fan_in + fan_out)))}[name]
    return bool(abs(sample.mean() - mean) < 6 * std / math.sqrt(sample.size) + 1e-12
                and abs(sample.std() / std - 1) < 6 / math.sqrt(sample.size) + 0.01)


def rows_from_times(times, built, ok, ceiling, nbytes, common, footprint_bytes: Optional[int] = None,
                    probe: Optional[float] = None) -> List[dict]:
    """One row per implementation: median ms with its spread (harness.Timing), items/s, GB/s by the
    byte model, the fraction of the ceiling measured in the same rounds, speedup vs the fastest other,
    and the reference check. With the bytes the case's arrays occupy (footprint_bytes), the fraction
    is left out (None, in_cache True) where they fit in the last-level cache: there the probe is not a
    memory ceiling and above 100 % is real. With the probe's timing, a probe that ran unstably is
    marked (probe_unstable)."""
    llc = harness.last_level_cache_bytes()
    in_cache = footprint_bytes is not None and llc is not None and footprint_bytes <= llc
    rows = []
    for name in built:
        t = times[name]
        # fusedopt's own rows (the class, its torch adapter, a baseline build) are compared with the others
        own = name.startswith("fusedopt")
        others = [times[o] for o in built if o != name and not (own and o.startswith("fusedopt"))]
        spread = t.spread() if isinstance(t, harness.Timing) else {}
        rows.append(dict(common, backend=name, ms=t * 1e3, **spread, unstable=harness.unstable(t),
                         gitems=common["n"] / t / 1e9, gbs=nbytes / t / 1e9,
                         ceiling_gbs=ceiling / 1e9, frac_ceiling=None if in_cache else nbytes / t / ceiling,
                         in_cache=in_cache, probe_unstable=probe is not None and harness.unstable(probe),
                         agrees_with_reference=ok[name],
                         speedup_vs_best_other=(min(others) / t) if others else None))
    return rows


# Adafactor's cases (its state is shaped by the params, so the shapes are its own) and its byte model
# (float32 arrays moved per param): factored, 3 passes: p and g, then g, then p and g read and p written;
# a vector, 2 passes: p, g, V read and V written, then p, g, V read and p written.
ADAFACTOR_CASES = {
    "matrix": [(2000, 5000)],
    "vector": [(10_000_000,)],
    "model": [(500, 500)] * 20 + [(250_000,)] * 20,
    "small": [(300, 129), (1000,)],  # for the benchmarks' own tests
}


def adafactor_arrays_per_param(shape) -> int:
    return 6 if len(shape) >= 2 else 8


def adafactor_expected(params, grads, kwargs):
    """The float64 reference's params after one Adafactor step from zero state (float32 eps1)."""
    from .. import reference

    expected = []
    for p, g in zip(params, grads):
        p64 = p.astype(np.float64)
        reference.adafactor(p64, g.astype(np.float64), {}, eps1_dtype=np.float32, **kwargs)
        expected.append(p64)
    return expected
