"""Loss scaling and gradient clipping inside the fused step (issue 16's fused unscale, overflow check and
clipping): ``fusedopt.functional.grad_norm`` against NumPy's float64 norm and across threads and ISAs;
``Optimizer.scaled_step`` against the reference (unscale, clip to the global norm, step) and torch
(``GradScaler.unscale_``, ``clip_grad_norm_``, step); an inf or NaN gradient skips the step and changes
nothing; ``torch.amp.GradScaler`` drives fusedopt.torch through its fused protocol to torch's numbers.

Tolerances are those of tests/test_optimizers_vs_reference.py: the factor 1/loss_scale is a power of
two here (exact), and the clip factor differs from the reference's by the rounding of its float64 norm."""

import math

import numpy as np
import pytest

import fusedopt
from fusedopt import _core, reference
from fusedopt.functional import grad_norm

from cases import make_optimizer, random_params

TOLERANCE = {np.float32: dict(rtol=2e-5, atol=2e-6), np.float64: dict(rtol=1e-10, atol=1e-12)}
SHAPES = [(7,), (300, 129), (0,), (1,), (40_003,)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_grad_norm_is_numpys_float64_norm_and_the_same_for_any_threads_and_isa(dtype, restore_runtime):
    rng = np.random.default_rng(0)
    grads = [rng.standard_normal(s).astype(dtype) for s in SHAPES] + [None]
    expected = math.sqrt(sum(float(np.sum(g.astype(np.float64) ** 2)) for g in grads if g is not None))
    norm, finite = grad_norm(grads)
    assert finite and norm == pytest.approx(expected, rel=1e-12)
    results = set()
    for threads in (1, 2):
        fusedopt.set_num_threads(threads)
        _core.set_serial_threshold(0)
        for isa in fusedopt.cpu_info()["available_isas"]:
            _core.set_isa(isa)
            results.add(grad_norm(grads))
    assert results == {(norm, True)}


@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
def test_grad_norm_sees_any_inf_or_nan(bad):
    grads = [np.ones(5000, np.float32), np.ones(3, np.float64)]
    grads[0][4321] = bad
    assert grad_norm(grads)[1] is False
    assert grad_norm(grads[1:]) == (math.sqrt(3.0), True)


def test_grad_norm_names_a_bad_gradient_by_its_position():
    with pytest.raises(TypeError, match=r"grads\[2\]"):
        grad_norm([np.ones(3, np.float32), None, np.ones(3, np.int32)])


CASES = [("Adam", dict(lr=0.01)), ("SGD", dict(lr=0.1, momentum=0.9)), ("LAMB", dict(lr=0.01, weight_decay=0.1)),
         ("Adagrad", dict(lr=0.1)), ("Rprop", dict(lr=0.01)), ("NAdam", dict(lr=0.01))]


def reference_scaled_run(name, kwargs, params, scaled_grads_per_step, loss_scale, max_norm):
    """The reference: unscale, skip a step with an inf or NaN, clip to the global norm, step."""
    ref = [p.astype(np.float64) for p in params]
    states = [{} for _ in params]
    fn = getattr(reference, name.lower())
    for grads in scaled_grads_per_step:
        unscaled = [g.astype(np.float64) / loss_scale for g in grads]
        if not all(np.isfinite(g).all() for g in unscaled):
            continue
        norm = math.sqrt(sum(float(np.sum(g * g)) for g in unscaled))
        clip = 1.0 if max_norm is None else min(1.0, max_norm / (norm + 1e-6))
        for p, g, s in zip(ref, unscaled, states):
            fn(p, g * clip, s, **kwargs)
    return ref


@pytest.mark.parametrize("max_norm", [None, 0.5])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("name,kwargs", CASES, ids=[c[0] for c in CASES])
def test_scaled_step_is_unscale_clip_and_step_and_skips_an_inf(name, kwargs, dtype, max_norm):
    shapes = [(30, 20), (20,), (5000,)]
    params = random_params(shapes, dtype, 0)
    rng = np.random.default_rng(1)
    loss_scale = 2.0**12
    steps = [[(rng.standard_normal(s) * loss_scale).astype(dtype) for s in shapes] for _ in range(8)]
    steps[3][1][4] = np.inf  # this step is skipped
    steps[5][0][0, 0] = np.nan  # and this one
    expected = reference_scaled_run(name, kwargs, params, steps, loss_scale, max_norm)
    opt = make_optimizer(name, params, kwargs)
    for t, grads in enumerate(steps):
        before = [p.tobytes() for p in params] + [v.tobytes() for s in opt.state.values() for v in s.values()
                                                  if isinstance(v, np.ndarray)]
        counts = [s.get("step") for s in opt.state.values()]
        saved_grads = [g.copy() for g in grads]
        report = opt.scaled_step(grads, loss_scale=loss_scale, max_norm=max_norm)
        assert all(a.tobytes() == b.tobytes() for a, b in zip(grads, saved_grads)), "the grads were written"
        assert report.skipped == (t in (3, 5))
        if report.skipped:
            after = [p.tobytes() for p in params] + [v.tobytes() for s in opt.state.values() for v in s.values()
                                                     if isinstance(v, np.ndarray)]
            assert after == before and [s.get("step") for s in opt.state.values()] == counts
            assert math.isinf(report.total_norm) if t == 3 else math.isnan(report.total_norm)
        else:
            assert (report.clip_coef < 1.0) == (max_norm is not None)
    for p, e in zip(params, expected):
        np.testing.assert_allclose(p, e, **TOLERANCE[dtype])


def test_adafactor_scaled_step_matches_the_reference():
    shapes = [(12, 9), (9,)]
    params = random_params(shapes, np.float64, 2)
    rng = np.random.default_rng(3)
    steps = [[rng.standard_normal(s) * 256.0 for s in shapes] for _ in range(5)]
    ref = [p.copy() for p in params]
    states = [{} for _ in params]
    opt = fusedopt.Adafactor(params, lr=0.05)
    for grads in steps:
        report = opt.scaled_step(grads, loss_scale=256.0, max_norm=1.0)
        for p, g, s in zip(ref, grads, states):
            reference.adafactor(p, g / 256.0 * report.clip_coef, s, lr=0.05)
    for p, e in zip(params, ref):
        np.testing.assert_allclose(p, e, **TOLERANCE[np.float64])


@pytest.mark.parametrize("argument,value,error", [
    ("loss_scale", 0.0, ValueError), ("loss_scale", -2.0, ValueError), ("loss_scale", math.nan, ValueError),
    ("loss_scale", math.inf, ValueError), ("loss_scale", "8", TypeError), ("max_norm", 0.0, ValueError),
    ("max_norm", -1.0, ValueError), ("max_norm", math.inf, ValueError)])
def test_bad_scaling_arguments_are_refused_and_change_nothing(argument, value, error):
    params = random_params([(4, 3), (3,)], np.float32, 4)
    opt = fusedopt.Adam(params)
    grads = [np.ones_like(p) for p in params]
    opt.step(grads)
    before = [p.copy() for p in params]
    with pytest.raises(error, match=argument):
        opt.scaled_step(grads, **{argument: value})
    if argument == "loss_scale":  # the same values as step's factor
        with pytest.raises(error, match="grad_scale"):
            opt.step(grads, grad_scale=value)
    assert all(np.array_equal(p, b) for p, b in zip(params, before))
    assert opt.state[0]["step"] == 1


# --- torch -------------------------------------------------------------------------------------------

def _torch_model(torch, seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Linear(7, 3))


@pytest.mark.parametrize("clip", [False, True])
def test_grad_scaler_drives_fusedopt_torch_to_torchs_numbers(clip):
    """GradScaler.step hands fusedopt.torch its scale and found_inf (the fused protocol); with
    unscale_ and clip_grad_norm_ first, the grads arrive unscaled. Either way, torch's numbers."""
    torch = pytest.importorskip("torch")
    import fusedopt.torch as ft

    nets = _torch_model(torch), _torch_model(torch)
    opts = torch.optim.Adam(nets[0].parameters(), lr=0.01), ft.Adam(nets[1].parameters(), lr=0.01)
    scalers = [torch.amp.GradScaler("cpu", init_scale=2.0**10) for _ in nets]
    gen = torch.Generator().manual_seed(5)
    batches = [(torch.randn(16, 5, generator=gen), torch.randn(16, 3, generator=gen)) for _ in range(6)]
    for step, (x, y) in enumerate(batches):
        for net, opt, scaler in zip(nets, opts, scalers):
            opt.zero_grad()
            scaler.scale(torch.nn.functional.mse_loss(net(x), y)).backward()
            if step == 2:
                next(iter(net.parameters())).grad[0, 0] = float("inf")  # skipped, and the scale halves
            if clip:
                scaler.unscale_(opt)
                torch.nn.utils.clip_grad_norm_(net.parameters(), 0.1)
            scaler.step(opt)
            scaler.update()
    assert scalers[0].get_scale() == scalers[1].get_scale() == 2.0**9
    for p, q in zip(*(net.parameters() for net in nets)):
        torch.testing.assert_close(q, p, rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("name", ["Adam", "SGD", "Adafactor"])
def test_fusedopt_torch_scaled_step_equals_unscale_clip_grad_norm_and_step(name):
    torch = pytest.importorskip("torch")
    import fusedopt.torch as ft

    kwargs = dict(lr=0.05, momentum=0.9) if name == "SGD" else dict(lr=0.01)
    nets = _torch_model(torch, 1), _torch_model(torch, 1)
    opts = getattr(torch.optim, name)(nets[0].parameters(), **kwargs), getattr(ft, name)(nets[1].parameters(), **kwargs)
    gen = torch.Generator().manual_seed(6)
    scale = 2.0**8
    for _ in range(5):
        x, y = torch.randn(16, 5, generator=gen), torch.randn(16, 3, generator=gen)
        for net, opt in zip(nets, opts):
            opt.zero_grad()
            (torch.nn.functional.mse_loss(net(x), y) * scale).backward()
        for p in nets[0].parameters():
            p.grad /= scale
        norm = torch.nn.utils.clip_grad_norm_(nets[0].parameters(), 0.05)
        opts[0].step()
        report = opts[1].scaled_step(loss_scale=scale, max_norm=0.05)
        assert not report.skipped and report.total_norm == pytest.approx(float(norm), rel=1e-5)
    for p, q in zip(*(net.parameters() for net in nets)):
        torch.testing.assert_close(q, p, rtol=2e-5, atol=2e-6)
