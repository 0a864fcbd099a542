"""Adafactor on CUDA arrays (python/fusedopt/cuda/adafactor.cu): the CPU kernels' bits, step after step,
for the option grid and shapes of tests/test_adafactor.py (which checks the CPU against the float64
reference and torch), in float32 and float64, through the optimizer class and the functional form;
bad input refused with nothing changed. Runs on a GPU (pytest -m gpu) and on the host emulation of
CuPy (a smaller 'large' layout there, to keep CI short)."""

import os

import numpy as np
import pytest

import fusedopt
from fusedopt.functional import adafactor

from gpu_support import cupy, pytestmark  # noqa: F401 - pytestmark marks this module

LARGE = int(os.environ.get("FUSEDOPT_GPU_TEST_LARGE", 2_000_003))
SHAPES = {
    "vectors": [(7,), (), (1,), (1023,)],
    "matrices": [(33, 150), (1, 5), (5, 1), (2, 3, 4), (3, 40, 50)],
    # several tiles per matrix (1024 columns, 64 rows) and per vector (16384 elements); 16,500
    # columns: the CPU's two bands of tiles per row block
    "tiled": [(130, 2100), (LARGE // 10,), (3, 70, 1030), (2000, 3), (40, 16_500)],
    "empty": [(0,), (3, 0, 2), (0, 4), (5,)],
}
OPTIONS = [
    {},
    dict(lr=0.05, weight_decay=0.1),
    dict(maximize=True, beta2_decay=-0.5),
    dict(eps=(1e-30, 1e-2), d=2.0),
    dict(lr=0.5, beta2_decay=0.0),
    dict(eps=(1e-3, 0.0), weight_decay=0.01, lr=1e-3),
]
STEPS = 5


def _id(kwargs):
    return "-".join(f"{k}={v}" for k, v in kwargs.items()) or "defaults"


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("layout", list(SHAPES))
@pytest.mark.parametrize("kwargs", OPTIONS, ids=[_id(k) for k in OPTIONS])
def test_gpu_adafactor_gives_the_cpus_bits(kwargs, layout, dtype):
    rng = np.random.default_rng(0)
    params = [rng.standard_normal(s).astype(dtype) for s in SHAPES[layout]]
    gpu_params = [cupy.asarray(p) for p in params]
    cpu, gpu = fusedopt.Adafactor(params, **kwargs), fusedopt.Adafactor(gpu_params, **kwargs)
    for t in range(STEPS):
        if t == 3:
            for opt in (cpu, gpu):
                opt.param_groups[0]["lr"] *= 0.3
        grads = [rng.standard_normal(p.shape).astype(dtype) for p in params]
        cpu.step(grads)
        gpu.step([cupy.asarray(g) for g in grads])  # new arrays every step: the grads row moves
        for i, (h, d) in enumerate(zip(params, gpu_params)):
            assert cupy.asnumpy(d).tobytes() == h.tobytes(), f"step {t + 1}, param {i} {h.shape}"
            for key, value in cpu.state[i].items():
                if key != "step":
                    assert cupy.asnumpy(gpu.state[i][key]).tobytes() == value.tobytes(), (t, i, key)


def test_gpu_functional_adafactor_gives_the_cpus_bits_with_the_same_grads_arrays():
    rng = np.random.default_rng(1)
    shapes = [(70, 1100), (5,), (2, 9, 3)]
    params = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    state = [[np.zeros(s[:-1] + (1,), np.float32) if len(s) >= 2 else None for s in shapes],
             [np.zeros(s[:-2] + (1, s[-1]), np.float32) if len(s) >= 2 else None for s in shapes],
             [np.zeros(s, np.float32) if len(s) < 2 else None for s in shapes]]
    dev = [cupy.asarray(p) for p in params]
    dev_state = [[None if a is None else cupy.asarray(a) for a in lists] for lists in state]
    dev_grads = [cupy.zeros(s, np.float32) for s in shapes]
    for step in range(1, 4):
        grads = [rng.standard_normal(s).astype(np.float32) for s in shapes]
        for d, g in zip(dev_grads, grads):
            d.set(g)
        adafactor(params, grads, *state, step=step, lr=0.03)
        adafactor(dev, dev_grads, *dev_state, step=step, lr=0.03)
        for h, d in zip(params + [a for lists in state for a in lists if a is not None],
                        dev + [a for lists in dev_state for a in lists if a is not None]):
            assert cupy.asnumpy(d).tobytes() == h.tobytes(), step


def _arrays():
    params = [cupy.ones((4, 5), cupy.float32), cupy.ones(6, cupy.float32)]
    grads = [cupy.ones((4, 5), cupy.float32), cupy.ones(6, cupy.float32)]
    return [params, grads, [cupy.zeros((4, 1), cupy.float32), None], [cupy.zeros((1, 5), cupy.float32), None],
            [None, cupy.zeros(6, cupy.float32)]]


def _set(k, i, value):
    def change(lists):
        lists[k][i] = value(lists) if callable(value) else value
    return change


# (arrays made inside the test: collecting the module must not touch a CUDA device)
BAD = [
    ("row factor of the wrong shape", _set(2, 0, lambda l: cupy.zeros((4, 5), cupy.float32)), ValueError,
     r"row_vars\[0\]: shape \(4, 5\) is not \(4, 1\)"),
    ("no row factor", _set(2, 0, None), ValueError, r"row_vars\[0\]: required"),
    ("a variance for a matrix", _set(4, 0, lambda l: cupy.zeros((4, 5), cupy.float32)), ValueError,
     r"variances\[0\]: expected None"),
    ("float64 state", _set(4, 1, lambda l: cupy.zeros(6)), TypeError, r"variances\[1\]: dtype float64"),
    ("non-contiguous state", _set(3, 0, lambda l: cupy.zeros((1, 10), cupy.float32)[:, ::2]), ValueError,
     "not C-contiguous"),
    ("grad of another shape", _set(1, 0, lambda l: cupy.zeros((5, 4), cupy.float32)), ValueError, r"grads\[0\]: shape"),
    ("a host array", _set(1, 1, np.zeros(6, np.float32)), TypeError, r"grads\[1\].*not on a CUDA device"),
    ("state sharing the param's memory", _set(4, 1, lambda l: l[0][1]), ValueError, "shares memory"),
    ("one list too short", lambda l: l[3].pop(), ValueError, "col_vars: expected 2 entries"),
]


@pytest.mark.parametrize("what,change,error,words", BAD, ids=[b[0] for b in BAD])
def test_bad_gpu_adafactor_input_is_refused_and_changes_nothing(what, change, error, words):
    lists = _arrays()
    change(lists)
    before = [[None if a is None or isinstance(a, np.ndarray) else cupy.asnumpy(a).tobytes() for a in x]
              for x in lists]
    with pytest.raises(error, match=words):
        adafactor(*lists, step=1)
    after = [[None if a is None or isinstance(a, np.ndarray) else cupy.asnumpy(a).tobytes() for a in x]
             for x in lists]
    assert after == before, what


@pytest.mark.parametrize("name", ["bfloat16", "float16"])
def test_gpu_16_bit_adafactor_gives_the_cpus_bits(name):
    """bfloat16 (CuPy uint16 bits) and float16 params with their state in the same type, computed in
    float32, through the optimizer class: the CPU's bits (and its ml_dtypes bfloat16 arrays)."""
    ml_dtypes = pytest.importorskip("ml_dtypes")
    dtype = np.dtype(ml_dtypes.bfloat16) if name == "bfloat16" else np.dtype(np.float16)
    on_device = (lambda a: cupy.asarray(a.view(np.uint16))) if name == "bfloat16" else cupy.asarray
    rng = np.random.default_rng(10)
    shapes = SHAPES["vectors"] + SHAPES["matrices"] + SHAPES["tiled"][:1] + [(40_003,)]
    params = [rng.standard_normal(s).astype(dtype) for s in shapes]
    gpu_params = [on_device(p) for p in params]
    cpu, gpu = fusedopt.Adafactor(params, lr=0.05, weight_decay=0.1), fusedopt.Adafactor(gpu_params, lr=0.05,
                                                                                         weight_decay=0.1)
    for step in range(3):
        grads = [rng.standard_normal(s).astype(dtype) for s in shapes]
        cpu.step(grads)
        gpu.step([on_device(g) for g in grads])
    for i, (h, d) in enumerate(zip(params, gpu_params)):
        assert cupy.asnumpy(d).tobytes() == h.tobytes(), f"param {i} {h.shape}"
        for key, value in cpu.state[i].items():
            if key != "step":
                assert cupy.asnumpy(gpu.state[i][key]).tobytes() == value.tobytes(), (i, key)


def test_a_gpu_adafactor_step_is_one_launch(monkeypatch):
    """Issue 15 asks for at most two launches per step: the phases wait for each other inside one
    cooperative launch. Counts the launches of fusedopt's kernels (steps 2 and 3: the first also
    builds the plan's device arrays), for factored, batched and vector params together."""
    from fusedopt.backends import cuda

    launches = []

    class Counted:
        def __init__(self, kernel):
            self._kernel = kernel

        def __getattr__(self, name):
            return getattr(self._kernel, name)

        def __call__(self, *args, **kwargs):
            launches.append(self._kernel.name)
            return self._kernel(*args, **kwargs)

    class CountedModule:
        def __init__(self, module):
            self._module = module

        def get_function(self, name):
            return Counted(self._module.get_function(name))

    module = cuda._module
    monkeypatch.setattr(cuda, "_module", lambda source, names: CountedModule(module(source, names)))
    rng = np.random.default_rng(5)
    shapes = [(130, 2100), (3, 70, 1030), (20_000,), (7,)]
    params = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    gpu_params = [cupy.asarray(p) for p in params]
    cpu, gpu = fusedopt.Adafactor(params, lr=0.05), fusedopt.Adafactor(gpu_params, lr=0.05)
    for step in range(3):
        grads = [rng.standard_normal(s).astype(np.float32) for s in shapes]
        launches.clear()
        cpu.step(grads)
        gpu.step([cupy.asarray(g) for g in grads])
        if step > 0:
            assert launches == ["adafactor_step_float32"], launches
    for h, d in zip(params, gpu_params):
        assert cupy.asnumpy(d).tobytes() == h.tobytes()


def test_gpu_adafactor_on_a_device_without_cooperative_launches_is_refused_and_changes_nothing(monkeypatch):
    from fusedopt.backends import cuda

    monkeypatch.setattr(cuda, "_cooperative_device", lambda device_id: False)
    lists = _arrays()
    before = [[None if a is None else cupy.asnumpy(a).tobytes() for a in x] for x in lists]
    with pytest.raises(RuntimeError, match="needs cooperative launches"):
        adafactor(*lists, step=1)
    assert [[None if a is None else cupy.asnumpy(a).tobytes() for a in x] for x in lists] == before
