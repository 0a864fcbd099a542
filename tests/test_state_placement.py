"""Where the CPU optimizers put a param's state buffers: each large one starts k/(count + 1) of a 4 KiB
page after its param (k = 1 .. count), so that no two of the arrays a step walks together share their
low 12 address bits (benchmarks/RESULTS.md: "4K aliasing"). The values are those the optimizer would
have without the placement; these tests check both."""

import ml_dtypes
import numpy as np
import pytest

import fusedopt
from fusedopt import reference
from fusedopt.backends import cpu

PAGE = 4096
LARGE = 40_000  # float32 elements: 160 KB, above the 64 KiB from which buffers are placed


def offsets(p, buffers):
    return [(b.ctypes.data - p.ctypes.data) % PAGE for b in buffers]


def expected_offsets(count):
    return [PAGE * k // (count + 1) // 64 * 64 for k in range(1, count + 1)]


CASES = [
    (fusedopt.Adam, reference.adam, dict(lr=1e-3), ["exp_avg", "exp_avg_sq"]),
    (fusedopt.Adam, reference.adam, dict(lr=1e-3, amsgrad=True), ["exp_avg", "exp_avg_sq", "max_exp_avg_sq"]),
    (fusedopt.SGD, reference.sgd, dict(lr=1e-3, momentum=0.9), ["momentum_buffer"]),
    (fusedopt.Adagrad, reference.adagrad, dict(lr=1e-3, initial_accumulator_value=0.25), ["sum"]),
]


@pytest.mark.parametrize("cls, ref, kwargs, keys", CASES, ids=["adam", "adam-amsgrad", "sgd-momentum", "adagrad"])
def test_state_buffers_of_a_large_param_sit_apart_and_hold_the_reference_values(cls, ref, kwargs, keys):
    rng = np.random.default_rng(0)
    p = rng.standard_normal(LARGE).astype(np.float32)
    ref_p, ref_state = p.astype(np.float64), {}
    opt = cls([p], **kwargs)
    for _ in range(3):
        g = rng.standard_normal(LARGE).astype(np.float32)
        opt.step([g])
        ref(ref_p, g.astype(np.float64), ref_state, **kwargs)
    state = opt.state[0]
    assert offsets(p, [state[k] for k in keys]) == expected_offsets(len(keys))
    np.testing.assert_allclose(p, ref_p, rtol=1e-5, atol=1e-6)
    for k in keys:
        assert state[k].shape == p.shape and state[k].dtype == p.dtype and state[k].flags.c_contiguous
        np.testing.assert_allclose(state[k], ref_state[k], rtol=1e-5, atol=1e-6)


def test_master_weights_count_among_the_placed_buffers():
    p = np.random.default_rng(1).standard_normal(LARGE).astype(ml_dtypes.bfloat16)
    opt = fusedopt.Adam([p], lr=1e-3, master_weights=True)
    opt.step([np.ones_like(p)])
    state = opt.state[0]
    keys = ["exp_avg", "exp_avg_sq", fusedopt.functional._precision.MASTER]
    assert offsets(p, [state[k] for k in keys]) == expected_offsets(3)


def test_loaded_state_is_placed_and_equal_to_what_was_saved():
    rng = np.random.default_rng(2)
    p = rng.standard_normal(LARGE).astype(np.float32)
    saved = fusedopt.Adam([p.copy()], lr=1e-3)
    saved.step([rng.standard_normal(LARGE).astype(np.float32)])
    opt = fusedopt.Adam([p], lr=1e-3)
    opt.load_state_dict(saved.state_dict())
    state, original = opt.state[0], saved.state[0]
    assert offsets(p, [state["exp_avg"], state["exp_avg_sq"]]) == expected_offsets(2)
    for k in ("exp_avg", "exp_avg_sq"):
        assert state[k].tobytes() == original[k].tobytes()
        assert state[k].ctypes.data != original[k].ctypes.data  # a copy, as before


def test_small_buffers_and_other_shapes_are_plain_arrays_with_the_values():
    p = np.arange(12, dtype=np.float64).reshape(3, 4)
    out = cpu.full_like(p, 0.5, slot=(1, 2))
    assert out.shape == (3, 4) and out.dtype == np.float64 and (out == 0.5).all()
    big = np.zeros((300, 200), np.float32)
    out = cpu.full_like(big, 2.0, "float64", slot=(2, 3))
    assert out.shape == big.shape and out.dtype == np.float64 and (out == 2.0).all() and out.flags.c_contiguous
    assert (out.ctypes.data - big.ctypes.data) % PAGE == expected_offsets(3)[1]
    src = np.linspace(-1, 1, 60_000).astype(np.float64)
    copy = cpu.copy_like(src, np.zeros(60_000, np.float32), slot=(1, 1))
    assert copy.dtype == np.float32 and (copy == src.astype(np.float32)).all()


# --- fusedopt.torch: the state tensors it creates are placed the same way ---------------------------

def test_torch_adapter_places_its_state_and_matches_torch(restore_runtime):
    torch = pytest.importorskip("torch")
    import io

    import fusedopt.torch as ft

    fusedopt.set_thread_runtime("openmp")  # fusedopt.torch's own default next to torch
    rng = np.random.default_rng(3)
    init = rng.standard_normal(LARGE).astype(np.float32)
    grads = [torch.from_numpy(rng.standard_normal(LARGE).astype(np.float32)) for _ in range(3)]
    ours = torch.nn.Parameter(torch.from_numpy(init.copy()))
    theirs = torch.nn.Parameter(torch.from_numpy(init.copy()))
    opt = ft.Adam([ours], lr=1e-2, amsgrad=True)
    ref = torch.optim.Adam([theirs], lr=1e-2, amsgrad=True)
    for g in grads:
        ours.grad, theirs.grad = g.clone(), g.clone()
        opt.step()
        ref.step()
    state, ref_state = opt.state[ours], ref.state[theirs]
    keys = ["exp_avg", "exp_avg_sq", "max_exp_avg_sq"]
    assert [(state[k].data_ptr() - ours.data_ptr()) % PAGE for k in keys] == expected_offsets(3)
    torch.testing.assert_close(ours.detach(), theirs.detach(), rtol=1e-6, atol=1e-7)
    for k in keys:
        assert state[k].shape == ours.shape and state[k].dtype == ours.dtype and state[k].is_contiguous()
        torch.testing.assert_close(state[k], ref_state[k], rtol=1e-6, atol=1e-7)
    # the state dict saves and loads into torch's own Adam, which then continues to the same numbers
    buffer = io.BytesIO()
    torch.save(opt.state_dict(), buffer)
    buffer.seek(0)
    again = torch.nn.Parameter(ours.detach().clone())
    loaded = torch.optim.Adam([again], lr=1e-2, amsgrad=True)
    loaded.load_state_dict(torch.load(buffer))
    g = torch.from_numpy(rng.standard_normal(LARGE).astype(np.float32))
    again.grad, ours.grad = g.clone(), g.clone()
    loaded.step()
    opt.step()
    torch.testing.assert_close(ours.detach(), again.detach(), rtol=1e-6, atol=1e-7)


def test_torch_adapter_places_adagrads_state_and_bfloat16_master_weights(restore_runtime):
    torch = pytest.importorskip("torch")
    import fusedopt.torch as ft

    fusedopt.set_thread_runtime("openmp")
    p = torch.nn.Parameter(torch.ones(LARGE))
    opt = ft.Adagrad([p], lr=1e-2, initial_accumulator_value=0.5)  # torch makes Adagrad's state at once
    assert (opt.state[p]["sum"].data_ptr() - p.data_ptr()) % PAGE == expected_offsets(1)[0]
    assert bool((opt.state[p]["sum"] == 0.5).all())
    q = torch.nn.Parameter(torch.linspace(-1, 1, LARGE).to(torch.bfloat16))
    opt = ft.Adam([q], lr=1e-3, master_weights=True)
    q.grad = torch.ones_like(q)
    before = q.detach().to(torch.float32)
    opt.step()
    state = opt.state[q]
    keys = ["exp_avg", "exp_avg_sq", fusedopt.functional._precision.MASTER]
    assert [(state[k].data_ptr() - q.data_ptr()) % PAGE for k in keys] == expected_offsets(3)
    # the master copy started at the param's values: one Adam step of lr 1e-3 with g = 1 moves it by 1e-3
    torch.testing.assert_close(state[keys[2]], before - 1e-3, rtol=0, atol=1e-6)
