"""The CUDA backend: every optimizer case on CuPy arrays, against the reference and bit for bit
against the CPU kernels (same rules, no FMA contraction on either side); the chunk-table cache,
streams and mixed-device refusal. Skipped without CuPy and a CUDA device."""

import os
import re

import numpy as np
import pytest

import fusedopt
from cases import CASES, ReferenceRun, assert_same_state, case_id, make_optimizer, random_grads, random_params

from gpu_support import cupy, pytestmark  # noqa: F401 - pytestmark marks this module

# The largest tensor: 2e6 elements on a GPU; test_gpu_tests_on_host.py runs this module on the host
# emulation with a smaller one (still many chunks per block) to keep CI short.
LARGE = int(os.environ.get("FUSEDOPT_GPU_TEST_LARGE", 2_000_003))
SHAPES = [(0,), (1,), (7,), (1023,), (300, 129), (LARGE,)] + [(int(n),) for n in range(11, 400, 37)]


def unaligned(values):
    """A CuPy view of a copy of ``values`` that starts one element past a 16-byte boundary."""
    buf = cupy.zeros(values.size + 1, values.dtype)
    if buf.data.ptr % 16:
        buf = cupy.zeros(values.size + 2, values.dtype)[1:]
    out = buf[1:]
    assert out.data.ptr % 16 and out.flags.c_contiguous
    out[...] = cupy.asarray(values)
    return out


def trajectories(name, kwargs, dtype, steps=20):
    params = random_params(SHAPES, dtype, 0)
    gpu_params = [cupy.asarray(p) for p in params]
    gpu_params[3] = unaligned(params[3])  # one element past a 16-byte boundary: the scalar path
    ref = ReferenceRun(name, params, kwargs)
    cpu_opt, gpu_opt = make_optimizer(name, params, kwargs), make_optimizer(name, gpu_params, kwargs)
    rng = np.random.default_rng(1)
    for t in range(steps):
        if t == steps // 2:
            for opt in (cpu_opt, gpu_opt):
                opt.param_groups[0]["lr"] *= 0.3
            ref.kwargs["lr"] = cpu_opt.param_groups[0]["lr"]
        grads = random_grads(SHAPES, dtype, rng)
        cpu_opt.step(grads)
        gpu_opt.step([cupy.asarray(g) for g in grads])
        ref.step(grads)
    return params, [cupy.asnumpy(p) for p in gpu_params], ref, cpu_opt, gpu_opt


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("case", CASES, ids=[case_id(c) for c in CASES])  # LAMB and LARS: two launches
def test_gpu_matches_reference_and_cpu_bits(case, dtype):
    from test_optimizers_vs_reference import assert_close

    name, kwargs = case
    cpu, gpu, ref, cpu_opt, gpu_opt = trajectories(name, kwargs, dtype)
    for i, (c, g, r) in enumerate(zip(cpu, gpu, ref.params)):
        assert_close(g, r, dtype, f"params[{i}]")
        assert g.tobytes() == c.tobytes(), f"params[{i}]: GPU and CPU bits differ"
    assert_same_state(cpu_opt, gpu_opt, cupy.asnumpy)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_grad_norm_and_scaled_step_give_the_cpus_bits(dtype):
    rng = np.random.default_rng(7)
    shapes = [(0,), (7,), (300, 129), (LARGE,)]
    host = [rng.standard_normal(s).astype(dtype) * 64 for s in shapes]
    assert fusedopt.functional.grad_norm([cupy.asarray(g) for g in host]) == fusedopt.functional.grad_norm(host)
    bad = [g.copy() for g in host]
    bad[2][5, 7] = np.nan
    assert fusedopt.functional.grad_norm([cupy.asarray(g) for g in bad])[1] is False
    params = random_params(shapes, dtype, 8)
    gpu_params = [cupy.asarray(p) for p in params]
    cpu_opt, gpu_opt = fusedopt.Adam(params, lr=0.01), fusedopt.Adam(gpu_params, lr=0.01)
    for _ in range(3):
        grads = [rng.standard_normal(s).astype(dtype) * 64 for s in shapes]
        reports = (cpu_opt.scaled_step(grads, loss_scale=64.0, max_norm=1.0),
                   gpu_opt.scaled_step([cupy.asarray(g) for g in grads], loss_scale=64.0, max_norm=1.0))
        assert reports[0] == reports[1] and reports[0].clip_coef < 1
    for p, g in zip(params, gpu_params):
        assert cupy.asnumpy(g).tobytes() == p.tobytes()


def test_new_arrays_at_new_addresses_do_not_reuse_a_stale_chunk_table():
    rng = np.random.default_rng(2)
    for _ in range(3):  # same shapes each time, new allocations
        host = [rng.standard_normal(s).astype(np.float32) for s in [(5000,), (70_000,)]]
        grads = [rng.standard_normal(p.shape).astype(np.float32) for p in host]
        dev = [cupy.asarray(p) for p in host]
        m = [cupy.zeros_like(p) for p in dev]
        v = [cupy.zeros_like(p) for p in dev]
        fusedopt.functional.adam(dev, [cupy.asarray(g) for g in grads], m, v, step=1, lr=0.1)
        fusedopt.functional.adam(host, grads, [np.zeros_like(p) for p in host], [np.zeros_like(p) for p in host],
                                 step=1, lr=0.1)
        for h, d in zip(host, dev):
            assert cupy.asnumpy(d).tobytes() == h.tobytes()


def test_runs_on_the_current_stream():
    host = np.random.default_rng(3).standard_normal(1_000_000).astype(np.float32)
    grad = np.ones_like(host)
    stream = cupy.cuda.Stream(non_blocking=True)
    with stream:
        p = cupy.asarray(host)
        opt = fusedopt.SGD([p], lr=0.5)
        opt.step([cupy.asarray(grad)])
    stream.synchronize()
    np.testing.assert_array_equal(cupy.asnumpy(p), host - np.float32(0.5))


def test_mixing_cpu_and_gpu_arrays_is_refused_and_changes_nothing():
    p = cupy.zeros(4, cupy.float32)
    with pytest.raises(TypeError, match=r"grads\[0\].*CUDA device"):
        fusedopt.functional.sgd([p], [np.ones(4, np.float32)], step=1, lr=0.1)
    assert not cupy.asnumpy(p).any()
    with pytest.raises(TypeError, match="dtype"):
        fusedopt.functional.sgd([p], [cupy.ones(4, cupy.float64)], step=1, lr=0.1)
    assert not cupy.asnumpy(p).any()


BFLOAT16_CLASSES = [
    ("AdamW", dict(lr=1e-2), {}),
    ("AdamW", dict(lr=1e-2), dict(master_weights=True)),
    ("Adam", dict(lr=1e-2, amsgrad=True), dict(rounding_seed=7)),
    ("Adagrad", dict(lr=0.1, initial_accumulator_value=0.1), {}),  # a state that starts away from zero
    ("SGD", dict(lr=0.1, momentum=0.9), dict(state_dtype="float32")),
    ("LAMB", dict(lr=1e-2), dict(master_weights=True, rounding_seed=3)),
]


@pytest.mark.parametrize("name,kwargs,options", BFLOAT16_CLASSES,
                         ids=[f"{n}-{'-'.join(o) or 'plain'}" for n, _, o in BFLOAT16_CLASSES])
def test_bfloat16_optimizer_classes_give_the_cpus_bits_and_their_state_dicts_cross(name, kwargs, options):
    """bfloat16 params as CuPy uint16 arrays in the optimizer classes (state made on the GPU, bfloat16
    state as uint16 bits, master copies widened from the bits) against the CPU's ml_dtypes arrays; a
    GPU state dict loads into a CPU optimizer and the reverse, mid-run."""
    ml_dtypes = pytest.importorskip("ml_dtypes")
    rng = np.random.default_rng(6)
    params = [rng.standard_normal(s).astype(ml_dtypes.bfloat16) for s in SHAPES[:5]]
    cpu_opt = getattr(fusedopt, name)([p.copy() for p in params], **kwargs, **options)
    gpu_params = [cupy.asarray(p.view(np.uint16)) for p in params]
    gpu_opt = getattr(fusedopt, name)(gpu_params, **kwargs, **options)
    for step in range(4):
        grads = [rng.standard_normal(s).astype(ml_dtypes.bfloat16) for s in SHAPES[:5]]
        cpu_opt.step(grads)
        gpu_opt.step([cupy.asarray(g.view(np.uint16)) for g in grads])
        if step == 1:  # across: the GPU's state into a new CPU optimizer, the CPU's into a new GPU one
            cpu_params = cpu_opt.param_groups[0]["params"]
            moved_cpu = getattr(fusedopt, name)([cupy.asnumpy(q).view(ml_dtypes.bfloat16) for q in gpu_params],
                                                **kwargs, **options)
            moved_cpu.load_state_dict(gpu_opt.state_dict())
            moved_gpu = getattr(fusedopt, name)([cupy.asarray(p.view(np.uint16)) for p in cpu_params],
                                                **kwargs, **options)
            moved_gpu.load_state_dict(cpu_opt.state_dict())
            cpu_opt, gpu_opt, gpu_params = moved_cpu, moved_gpu, moved_gpu.param_groups[0]["params"]
    for i, (p, q) in enumerate(zip(cpu_opt.param_groups[0]["params"], gpu_params)):
        assert cupy.asnumpy(q).tobytes() == p.tobytes(), f"params[{i}]"
        for key, value in cpu_opt.state[i].items():
            if key != "step":
                assert cupy.asnumpy(gpu_opt.state[i][key]).tobytes() == value.tobytes(), (i, key)
        assert gpu_opt.state[i]["step"] == cpu_opt.state[i]["step"] == 4


@pytest.mark.parametrize("bad,error,words", [
    ("shape", ValueError, r"grads\[1\].*shape"),
    ("non-contiguous", ValueError, r"exp_avgs\[0\].*contiguous"),
    ("count", ValueError, r"exp_avg_sqs.*expected 2"),
])
def test_bad_gpu_call_raises_and_changes_nothing(bad, error, words):
    params = [cupy.arange(6, dtype=cupy.float32), cupy.ones((2, 3), cupy.float32)]
    grads = [cupy.ones_like(p) for p in params]
    m = [cupy.zeros_like(p) for p in params]
    v = [cupy.zeros_like(p) for p in params]
    if bad == "shape":
        grads[1] = cupy.ones((3, 2), cupy.float32)
    elif bad == "non-contiguous":
        m[0] = cupy.zeros(12, cupy.float32)[::2]
    else:
        v.pop()
    before = [cupy.asnumpy(a).tobytes() for a in params + m + v]
    with pytest.raises(error, match=words):
        fusedopt.functional.adam(params, grads, m, v, step=1)
    assert [cupy.asnumpy(a).tobytes() for a in params + m + v] == before


# The chunk size sets every step's table; the blocks per multiprocessor, the grid of the kernels with
# one thread per chunk (LAMB's norms).
@pytest.mark.parametrize("variable,value,step", [("FUSEDOPT_CUDA_CHUNK", "6", "adam"),
                                                 ("FUSEDOPT_CUDA_BLOCKS_PER_SM", "0", "lamb")])
def test_a_bad_launch_setting_raises_and_changes_nothing(variable, value, step, monkeypatch):
    params = [cupy.arange(6, dtype=cupy.float32), cupy.ones((2, 3), cupy.float32)]
    grads = [cupy.ones_like(p) for p in params]
    m, v = [cupy.zeros_like(p) for p in params], [cupy.zeros_like(p) for p in params]
    before = [cupy.asnumpy(a).tobytes() for a in params + m + v]
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValueError, match=variable):
        getattr(fusedopt.functional, step)(params, grads, m, v, step=1)
    assert [cupy.asnumpy(a).tobytes() for a in params + m + v] == before


def test_a_list_checked_before_is_checked_again_when_an_array_is_replaced():
    params = [cupy.zeros(8, cupy.float32), cupy.zeros((2, 3), cupy.float32)]
    grads = [cupy.ones_like(p) for p in params]
    m, v = [cupy.zeros_like(p) for p in params], [cupy.zeros_like(p) for p in params]
    fusedopt.functional.adam(params, grads, m, v, step=1)  # checked, and remembered
    before = [cupy.asnumpy(a).tobytes() for a in params + m + v]
    m[1] = cupy.zeros((3, 2), cupy.float32)  # same list object, one new array of the wrong shape
    with pytest.raises(ValueError, match=r"exp_avgs\[1\].*shape"):
        fusedopt.functional.adam(params, grads, m, v, step=2)
    assert [cupy.asnumpy(a).tobytes() for a in params + m[:1] + v] == before[:3] + before[4:]


def test_a_freed_array_whose_id_is_reused_is_checked_anew():
    """Python reuses the id of a freed object for the next one of its size: the check remembered
    for the old array must not serve the new one (here of another length, at another address)."""
    for n in range(1, 41):
        p = cupy.zeros(n, cupy.float32)
        fusedopt.functional.sgd([p], [cupy.ones(n, cupy.float32)], step=1, lr=0.5)
        np.testing.assert_array_equal(cupy.asnumpy(p), np.full(n, -0.5, np.float32))
        del p


def test_gpu_state_dict_is_a_copy_and_reloads_on_the_gpu():
    rng = np.random.default_rng(4)
    host = [rng.standard_normal(s).astype(np.float32) for s in [(1000,), (30, 7)]]
    a = [cupy.asarray(p) for p in host]
    opt = fusedopt.Adam(a, lr=0.01)
    grads = [[cupy.asarray(rng.standard_normal(p.shape).astype(np.float32)) for p in host] for _ in range(6)]
    for g in grads[:3]:
        opt.step(g)
    saved = opt.state_dict()
    b = [p.copy() for p in a]
    for g in grads[3:]:
        opt.step(g)  # must not change the snapshot
    opt2 = fusedopt.Adam(b, lr=0.01)
    opt2.load_state_dict(saved)
    assert isinstance(opt2.state[0]["exp_avg"], cupy.ndarray)
    for g in grads[3:]:
        opt2.step(g)
    for x, y in zip(a, b):
        assert cupy.asnumpy(x).tobytes() == cupy.asnumpy(y).tobytes()


class OtherFrameworkArray:
    """A CUDA array of some other framework: nothing but __cuda_array_interface__ (as Numba's)."""

    def __init__(self, owner):
        self.__cuda_array_interface__ = owner.__cuda_array_interface__
        self.owner = owner  # keeps the memory alive


def test_arrays_of_another_framework_are_updated_in_place_without_copies():
    rng = np.random.default_rng(5)
    host = [rng.standard_normal(s).astype(np.float32) for s in [(4000,), (7, 9)]]
    grads = [rng.standard_normal(p.shape).astype(np.float32) for p in host]
    owners = [cupy.asarray(p) for p in host]
    opt = fusedopt.Adam([OtherFrameworkArray(o) for o in owners], lr=0.05)
    cpu_opt = fusedopt.Adam(host, lr=0.05)
    for _ in range(3):
        opt.step([OtherFrameworkArray(cupy.asarray(g)) for g in grads])
        cpu_opt.step(grads)
    for o, h in zip(owners, host):
        assert cupy.asnumpy(o).tobytes() == h.tobytes()
    assert isinstance(opt.state[0]["exp_avg"], cupy.ndarray)


@pytest.mark.parametrize("layout,words", [
    ("same arrays twice", r"(params|grads|exp_avgs|exp_avg_sqs)\[1\]: shares memory with \1\[0\]"),
    ("grad is the param shifted by one", r"grads\[0\]: shares memory with params\[0\]"),
    ("state overlaps another param", r"exp_avgs\[1\]: shares memory with params\[0\]"),
])
def test_gpu_arrays_sharing_memory_are_refused_and_unchanged(layout, words):
    base = cupy.arange(21, dtype=cupy.float32)
    p, g = base[:10], cupy.ones(10, cupy.float32)
    m, v = cupy.zeros(10, cupy.float32), cupy.zeros(10, cupy.float32)
    if layout == "same arrays twice":
        lists = [p, p], [g, g], [m, m], [v, v]
    elif layout == "grad is the param shifted by one":
        lists = [p], [base[1:11]], [m], [v]
    else:
        lists = [p, cupy.zeros(10, cupy.float32)], [g, g.copy()], [m, base[5:15]], [v, v.copy()]
    arrays = [base, g, m, v]
    before = [cupy.asnumpy(a).tobytes() for a in arrays]
    with pytest.raises(ValueError, match=words):
        fusedopt.functional.adam(*lists, step=1)
    assert [cupy.asnumpy(a).tobytes() for a in arrays] == before


def test_a_grad_that_is_its_own_gpu_param_is_allowed():
    p = cupy.arange(8, dtype=cupy.float64)
    fusedopt.functional.sgd([p], [p], step=1, lr=0.5)
    np.testing.assert_array_equal(cupy.asnumpy(p), np.arange(8) * 0.5)


def test_gpu_params_sharing_memory_are_refused_by_the_optimizer_and_across_its_groups():
    base = cupy.zeros(20, cupy.float32)
    with pytest.raises(ValueError, match=r"param_groups\[0\]\['params'\]\[1\]: shares memory"):
        fusedopt.SGD([base[:10], base[5:15]], lr=0.1)
    a, b = base[:10], cupy.zeros(10, cupy.float64)
    opt = fusedopt.Adam([{"params": [a]}, {"params": [b], "lr": 0.5}])
    opt.step([cupy.ones(10, cupy.float32), cupy.ones(10, cupy.float64)])
    opt.state[1]["exp_avg"] = cupy.zeros(20, cupy.float32).view(cupy.float64)  # its own memory: fine
    opt.state[0]["exp_avg_sq"] = opt.state[1]["exp_avg"].view(cupy.float32)[:10]  # state[1]'s memory, other call
    before = [cupy.asnumpy(x).tobytes() for x in (a, b)]
    with pytest.raises(ValueError, match=r"shares memory"):
        opt.step([cupy.ones(10, cupy.float32), cupy.ones(10, cupy.float64)])
    assert [cupy.asnumpy(x).tobytes() for x in (a, b)] == before


def test_a_misaligned_gpu_fill_target_is_refused_and_unchanged():
    buf = cupy.zeros(72, cupy.uint8)
    target = buf[4:68].view(cupy.float64)
    with pytest.raises(ValueError, match="tensor: array is not aligned"):
        fusedopt.init.uniform_(target, seed=0)
    assert not cupy.asnumpy(buf).any()


def test_a_launch_holds_its_arrays_until_the_gpu_has_run_it():
    """A freed CuPy block goes back to its allocation stream's pool at once; the arrays of a launch
    are kept until its event reports done (then released at a later launch)."""
    import gc
    import weakref

    from fusedopt.backends import cuda as backend

    p, g = cupy.zeros(1000, cupy.float32), cupy.ones(1000, cupy.float32)
    grad_ref = weakref.ref(g)
    fusedopt.functional.sgd([p], [g], step=1, lr=0.5)
    del g
    gc.collect()
    held = grad_ref() is not None  # alive at least until the launch is known done
    cupy.cuda.get_current_stream().synchronize()
    fusedopt.functional.sgd([p], [cupy.ones(1000, cupy.float32)], step=1, lr=0.5)  # polls the finished ones
    fusedopt.functional.sgd([p], [cupy.ones(1000, cupy.float32)], step=1, lr=0.5)
    gc.collect()
    assert held and grad_ref() is None and len(backend._in_flight) <= 2
    np.testing.assert_array_equal(cupy.asnumpy(p), np.full(1000, -1.5, np.float32))


def test_torch_cuda_adapter_matches_torch_optim_on_torchs_stream():
    """fusedopt.torch on CUDA tensors: the same params as torch.optim after a few steps taken under a
    side stream (the kernels must run on torch's current stream, after the backward that wrote the
    grads), with the params' memory updated in place. Needs torch built with CUDA."""
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA here")
    import fusedopt.torch as ft

    def net():
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.Tanh(), torch.nn.Linear(256, 8)).cuda()

    a, b = net(), net()
    oa, ob = torch.optim.Adam(a.parameters(), lr=0.01, amsgrad=True), ft.Adam(b.parameters(), lr=0.01, amsgrad=True)
    pointers = [p.data_ptr() for p in b.parameters()]
    x, y = torch.randn(512, 64, device="cuda"), torch.randn(512, 8, device="cuda")
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(5):
            for model, opt in ((a, oa), (b, ob)):
                opt.zero_grad(set_to_none=True)
                torch.nn.functional.mse_loss(model(x), y).backward()
                opt.step()
    torch.cuda.synchronize()
    assert [p.data_ptr() for p in b.parameters()] == pointers
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(q, p, rtol=2e-5, atol=2e-6)


# --- 16-bit storage (README, "Mixed precision"): the CPU's bits ---------------------------------------

ELEMENTWISE_CASES = [c for c in CASES if c[0] not in ("LAMB", "LARS")]
# half the elementwise cases, and every case of the two-pass rules (their 16-bit first pass stores nothing)
MIXED_CASES = ELEMENTWISE_CASES[::2] + [c for c in CASES if c[0] in ("LAMB", "LARS")]
MIXED_LAYOUTS = {  # param storage, state storage, master copies, rounding seed (bfloat16: uint16 bits here)
    "bfloat16": ("bfloat16", "bfloat16", False, None),
    "bfloat16-stochastic": ("bfloat16", "bfloat16", False, 2**40 + 3),
    "float16-float32-state": ("float16", "float32", False, None),
    "bfloat16-master": ("bfloat16", "float32", True, None),
    "float16-master": ("float16", "float32", True, None),
}


def on_device(a):
    """A CuPy copy of a host array: bfloat16 as its uint16 bits (CuPy has no bfloat16)."""
    return cupy.asarray(a.view(np.uint16) if a.dtype.name == "bfloat16" else a)


@pytest.mark.parametrize("layout", MIXED_LAYOUTS)
@pytest.mark.parametrize("case", MIXED_CASES, ids=[case_id(c) for c in MIXED_CASES])
def test_16_bit_steps_give_the_cpus_bits(case, layout):
    """The functional step over 16-bit lists (and float32 master copies), two steps, on the GPU and on
    the CPU from the same arrays: the same bits, stochastic rounding included."""
    ml_dtypes = pytest.importorskip("ml_dtypes")
    from fusedopt.functional._spec import run

    name, kwargs = case
    kind, state_kind, master, seed = MIXED_LAYOUTS[layout]
    storage = {"bfloat16": np.dtype(ml_dtypes.bfloat16), "float16": np.dtype(np.float16), "float32": np.dtype(np.float32)}
    spec = next(s for s in fusedopt.functional.SPECS if s.class_name == name)
    h = {**spec.defaults, **kwargs}
    rng = np.random.default_rng(3)
    shapes = SHAPES[:5]
    params = [rng.standard_normal(s).astype(storage[kind]) for s in shapes]
    masters = [p.astype(np.float32) for p in params] if master else None
    buffers = {b.argument: [np.full(s, spec.initial_value(b, h), storage[state_kind]) for s in shapes]
               for b in spec.buffers}
    gpu = dict(params=[on_device(p) for p in params], masters=[cupy.asarray(m) for m in masters] if master else None,
               buffers={k: [on_device(a) for a in v] for k, v in buffers.items()})
    for step in (1, 2):
        grads = [rng.standard_normal(s).astype(storage[kind]) for s in shapes]
        variant_buffers = {b.argument: buffers[b.argument] for b in spec.buffers_in(spec.variant(h, step))}
        run(spec, params, grads, {**{b.argument: None for b in spec.buffers}, **variant_buffers}, step, h,
            master_params=masters, rounding_seed=seed)
        run(spec, gpu["params"], [on_device(g) for g in grads],
            {**{b.argument: None for b in spec.buffers}, **{k: gpu["buffers"][k] for k in variant_buffers}}, step, h,
            master_params=gpu["masters"], rounding_seed=seed)
    host = lambda a: a.view(np.uint16) if a.dtype.name == "bfloat16" else a  # noqa: E731 - bits to compare
    for i, (p, g) in enumerate(zip(params, gpu["params"])):
        assert cupy.asnumpy(g).tobytes() == host(p).tobytes(), f"params[{i}]"
    for key, arrays in buffers.items():
        for i, (a, g) in enumerate(zip(arrays, gpu["buffers"][key])):
            assert cupy.asnumpy(g).tobytes() == host(a).tobytes(), f"{key}[{i}]"
    for i, (m, g) in enumerate(zip(masters or [], gpu["masters"] or [])):
        assert cupy.asnumpy(g).tobytes() == m.tobytes(), f"master_params[{i}]"


@pytest.mark.parametrize("name", ["AdamW", "LAMB", "LARS"])
def test_float16_optimizer_classes_with_master_weights_give_the_cpus_bits(name):
    params = [np.random.default_rng(4).standard_normal(s).astype(np.float16) for s in SHAPES[:5]]
    cpu_opt = getattr(fusedopt, name)([p.copy() for p in params], lr=1e-2, master_weights=True)
    gpu_params = [cupy.asarray(p) for p in params]
    gpu_opt = getattr(fusedopt, name)(gpu_params, lr=1e-2, master_weights=True)
    rng = np.random.default_rng(5)
    for _ in range(3):
        grads = [rng.standard_normal(s).astype(np.float16) for s in SHAPES[:5]]
        cpu_opt.step(grads)
        gpu_opt.step([cupy.asarray(g) for g in grads])
    assert_same_state(cpu_opt, gpu_opt, cupy.asnumpy)
    for p, q in zip(cpu_opt.param_groups[0]["params"], gpu_params):
        assert cupy.asnumpy(q).tobytes() == p.tobytes()


@pytest.mark.parametrize("bad,error,words", [
    ("stochastic rounding of float16", ValueError, "stochastic rounding is for bfloat16"),
    ("float64 master copies", TypeError, "master_params[0]"),
    ("master copies of float32 params", ValueError, "master weights"),
])
def test_bad_16_bit_gpu_calls_raise_and_change_nothing(bad, error, words):
    p, g = cupy.ones(8, np.uint16), cupy.ones(8, np.uint16)
    m, v = cupy.zeros(8, np.uint16), cupy.zeros(8, np.uint16)
    kwargs = {}
    if bad == "stochastic rounding of float16":
        p, g, m, v = (a.view(np.float16) for a in (p, g, m, v))
        kwargs = dict(rounding_seed=1)
    elif bad == "float64 master copies":
        kwargs = dict(master_params=[cupy.zeros(8)])
    elif bad == "master copies of float32 params":
        p, g, m, v = cupy.ones(8, np.float32), cupy.ones(8, np.float32), cupy.zeros(8, np.float32), cupy.zeros(
            8, np.float32)
        kwargs = dict(master_params=[cupy.zeros(8, np.float32)])
    before = [cupy.asnumpy(a).tobytes() for a in (p, g, m, v)]
    with pytest.raises(error, match=re.escape(words)):
        fusedopt.functional.adam([p], [g], [m], [v], step=1, **kwargs)
    assert [cupy.asnumpy(a).tobytes() for a in (p, g, m, v)] == before
