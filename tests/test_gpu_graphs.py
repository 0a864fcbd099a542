"""The CUDA step's host side (issue 18): a step whose grads are new arrays points the device table at
them without rebuilding it; a steady step (the same grads arrays) checks nothing again; a capturable
optimizer's step captured in a CUDA graph replays to the bits of eager steps; and the benchmark's
Adam-traffic probe moves what it claims to; the README's CUDA examples run. Every
result is compared with eager steps on the CPU kernels (the same bits: no FMA contraction on either
side). Runs on a GPU (pytest -m gpu) and on the host emulation of CuPy, whose streams record a
capture and replay it."""

import re
from pathlib import Path

import numpy as np
import pytest

import fusedopt
from fusedopt.backends import cuda as backend

from gpu_support import cupy, pytestmark  # noqa: F401 - pytestmark marks this module

SHAPES = [(1000,), (7,), (33, 65), (4096 * 3 + 5,)]
CAPTURABLE = [("Adam", dict(lr=0.01, weight_decay=0.1)), ("AdamW", dict(lr=0.01, amsgrad=True)),
              ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True)), ("NAdam", dict(lr=0.01)),
              ("RMSprop", dict(lr=0.01, centered=True, momentum=0.5)), ("Adagrad", dict(lr=0.1))]


def host_params(dtype, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(dtype) for s in SHAPES]


def host_grads(steps, dtype, seed=1):
    rng = np.random.default_rng(seed)
    return [[rng.standard_normal(s).astype(dtype) for s in SHAPES] for _ in range(steps)]


def cpu_run(name, kwargs, params, grads):
    params = [p.copy() for p in params]
    opt = getattr(fusedopt, name)(params, **kwargs)
    for g in grads:
        opt.step(g)
    return params, opt


def assert_bits(gpu_arrays, host_arrays):
    for i, (d, h) in enumerate(zip(gpu_arrays, host_arrays)):
        assert cupy.asnumpy(d).tobytes() == h.tobytes(), f"array {i}"


@pytest.mark.parametrize("name,kwargs", CAPTURABLE, ids=[n for n, _ in CAPTURABLE])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_replayed_graph_gives_the_bits_of_eager_steps(name, kwargs, dtype):
    params, grads = host_params(dtype), host_grads(6, dtype)
    expected, cpu_opt = cpu_run(name, kwargs, params, grads)
    stream = cupy.cuda.Stream(non_blocking=True)
    with stream:
        dev = [cupy.asarray(p) for p in params]
        static = [cupy.asarray(g) for g in grads[0]]  # the grads a captured backward would write
        opt = getattr(fusedopt, name)(dev, capturable=True, **kwargs)
        opt.step(static)  # eager: makes the state and the plan
        stream.begin_capture()
        opt.step(static)  # recorded, not run, not counted
        graph = stream.end_capture()
        assert opt.state[0]["step"] == 1
        for g in grads[1:]:
            for s, values in zip(static, g):
                s.set(values)
            opt.prepare_replay()
            graph.launch(stream)
    stream.synchronize()
    assert_bits(dev, expected)
    for i in range(len(SHAPES)):
        assert opt.state[i]["step"] == cpu_opt.state[i]["step"] == 6
        for key, value in cpu_opt.state[i].items():
            if key != "step":
                assert cupy.asnumpy(opt.state[i][key]).tobytes() == value.tobytes(), (i, key)


def test_capturing_needs_an_eager_step_and_the_same_grads_and_changes_nothing_when_refused():
    params, grads = host_params(np.float32), host_grads(2, np.float32)
    stream = cupy.cuda.Stream(non_blocking=True)
    with stream:
        dev = [cupy.asarray(p) for p in params]
        opt = fusedopt.Adam(dev, lr=0.01, capturable=True)
        stream.begin_capture()
        with pytest.raises(RuntimeError, match="eager step"):
            opt.step([cupy.asarray(g) for g in grads[0]])
        stream.end_capture()
        assert opt.state == {}
        opt.step([cupy.asarray(g) for g in grads[0]])
        before = [cupy.asnumpy(a).tobytes() for a in dev]
        stream.begin_capture()
        with pytest.raises(RuntimeError, match="same grads arrays"):
            opt.step([cupy.asarray(g) for g in grads[1]])  # new arrays: their addresses are not in the table
        stream.end_capture()
    assert [cupy.asnumpy(a).tobytes() for a in dev] == before and opt.state[0]["step"] == 1


def test_prepare_replay_without_a_captured_step_or_capturable_is_refused():
    dev = [cupy.asarray(p) for p in host_params(np.float32)]
    with pytest.raises(RuntimeError, match="capturable=True"):
        fusedopt.Adam(dev).prepare_replay()
    opt = fusedopt.Adam(dev, capturable=True)
    with pytest.raises(RuntimeError, match="no step of this optimizer to replay"):
        opt.prepare_replay()
    opt.step([cupy.asarray(g) for g in host_grads(1, np.float32)[0]])
    with pytest.raises(RuntimeError, match="no step of this optimizer was captured"):
        opt.prepare_replay()
    assert opt.state[0]["step"] == 1


def test_a_step_captured_without_capturable_is_refused():
    grads = [cupy.asarray(g) for g in host_grads(1, np.float32)[0]]
    stream = cupy.cuda.Stream(non_blocking=True)
    with stream:
        dev = [cupy.asarray(p) for p in host_params(np.float32)]
        opt = fusedopt.Adam(dev, lr=0.01)
        opt.step(grads)
        before = [cupy.asnumpy(a).tobytes() for a in dev]
        stream.begin_capture()
        with pytest.raises(RuntimeError, match="capturable=True"):
            opt.step(grads)
        stream.end_capture()
    assert [cupy.asnumpy(a).tobytes() for a in dev] == before and opt.state[0]["step"] == 1


@pytest.mark.parametrize("name,error", [("LAMB", NotImplementedError), ("numpy", ValueError)])
def test_capturable_is_refused_where_it_has_no_kernel(name, error):
    if name == "numpy":
        with pytest.raises(ValueError, match="capturable=True is for CUDA arrays"):
            fusedopt.Adam(host_params(np.float32), capturable=True)
        return
    dev = [cupy.asarray(p) for p in host_params(np.float32)]
    before = [cupy.asnumpy(a).tobytes() for a in dev]
    opt = fusedopt.LAMB(dev, capturable=True)
    with pytest.raises(error, match="capturable"):
        opt.step([cupy.asarray(g) for g in host_grads(1, np.float32)[0]])
    assert [cupy.asnumpy(a).tobytes() for a in dev] == before and opt.state == {}


def test_new_grads_each_step_point_the_table_without_rebuilding_it(monkeypatch):
    params, grads = host_params(np.float32), host_grads(5, np.float32)
    expected, _ = cpu_run("Adam", dict(lr=0.01), params, grads)
    dev = [cupy.asarray(p) for p in params]
    opt = fusedopt.Adam(dev, lr=0.01)
    opt.step([cupy.asarray(g) for g in grads[0]])
    built, copies = [], []
    monkeypatch.setattr(backend, "_DeviceTable", lambda *a, **k: built.append(a) or pytest.fail("table rebuilt"))
    real_copy = backend._staging.copy
    monkeypatch.setattr(backend._staging, "copy", lambda *a: copies.append(a) or real_copy(*a))
    for g in grads[1:]:  # new arrays every step, as with zero_grad(set_to_none=True)
        opt.step([cupy.asarray(x) for x in g])
    assert not built and len(copies) == 4  # one grads-row copy per step, no synchronize
    assert_bits(dev, expected)


def test_a_steady_step_checks_nothing_again_and_a_changed_grad_is_checked(monkeypatch):
    params, grads = host_params(np.float32), host_grads(4, np.float32)
    expected, _ = cpu_run("SGD", dict(lr=0.1, momentum=0.9), params, grads)
    dev = [cupy.asarray(p) for p in params]
    opt = fusedopt.SGD(dev, lr=0.1, momentum=0.9)
    static = [cupy.asarray(g) for g in grads[0]]
    opt.step(static)
    for s, values in zip(static, grads[1]):
        s.set(values)
    opt.step(static)  # (SGD's first step is another variant: its second one is checked once more)
    checks = []
    real_check = backend._check
    monkeypatch.setattr(backend, "_check", lambda lists: checks.append(lists) or real_check(lists))
    for g in grads[2:]:
        for s, values in zip(static, g):
            s.set(values)
        opt.step(static)
    assert checks == []  # the same CuPy arrays: checked at the first step
    assert_bits(dev, expected)
    static[2] = cupy.zeros((65, 33), np.float32)  # same list, one new array of the wrong shape
    before = [cupy.asnumpy(a).tobytes() for a in dev]
    with pytest.raises(ValueError, match=r"grads\[2\].*shape"):
        opt.step(static)
    assert [cupy.asnumpy(a).tobytes() for a in dev] == before


def test_a_freed_grad_whose_id_is_reused_is_checked_anew():
    dev = [cupy.asarray(p) for p in host_params(np.float32)]
    opt = fusedopt.SGD(dev, lr=0.1)
    grads = [cupy.asarray(g) for g in host_grads(1, np.float32)[0]]
    opt.step(grads)
    del grads[3]
    grads.insert(3, cupy.zeros(7, np.float32))  # maybe at the freed array's id: must not pass as steady
    with pytest.raises(ValueError, match=r"grads\[3\].*shape"):
        opt.step(grads)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_adam_traffic_probe_moves_adams_bytes_with_the_steps_walker(dtype):
    """bench_gpu.py's ceiling for Adam: 4 reads, 3 writes per element, p += g and the two states
    swapped (so a test can see that every element was read and written, aligned or not)."""
    rng = np.random.default_rng(5)
    host = [[rng.standard_normal(s).astype(dtype) for s in SHAPES] for _ in range(4)]
    dev = [[cupy.asarray(a) for a in lists] for lists in host]
    backend.adam_traffic_probe(*dev)()
    p, g, m, v = host
    assert_bits(dev[0], [a + b for a, b in zip(p, g)])
    assert_bits(dev[1], g)
    assert_bits(dev[2], v)
    assert_bits(dev[3], m)


README = Path(__file__).resolve().parents[1] / "README.md"
CUDA_BLOCKS = re.findall(r"```python cuda\n(.*?)```", README.read_text(), flags=re.S)


def test_the_readme_has_cuda_examples():
    assert CUDA_BLOCKS  # (tests/test_readme.py runs the ```python blocks, which need no GPU)


@pytest.mark.parametrize("index", range(len(CUDA_BLOCKS)))
def test_readme_cuda_example_runs(index):
    exec(compile(CUDA_BLOCKS[index], f"README.md python cuda block {index}", "exec"), {})
