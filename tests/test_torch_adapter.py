"""fusedopt.torch against torch.optim itself: the same small model trained with torch.optim.X and
fusedopt.torch.X from the same init and data ends at the same parameters, over every case of
tests/cases.py and torch's own optimizer database (optim_db); state dicts cross both ways mid-run;
lr_scheduler, GradScaler, closures, zero_grad, zero-copy updates and clear refusals."""

import re

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import fusedopt  # noqa: E402
import fusedopt.torch as ft  # noqa: E402

from cases import CASES, case_id  # noqa: E402


@pytest.fixture(autouse=True)
def on_torchs_openmp_team(restore_runtime):
    """fusedopt.torch's default thread runtime (the rest of the suite runs on the pool: conftest)."""
    fusedopt.set_thread_runtime("openmp")

TOLERANCE = {torch.float32: dict(rtol=2e-5, atol=2e-6), torch.float64: dict(rtol=1e-10, atol=1e-12)}


def model(dtype, seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Linear(7, 3)).to(dtype)


def data(dtype, steps, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(16, 5, generator=g, dtype=dtype), torch.randn(16, 3, generator=g, dtype=dtype))
            for _ in range(steps)]


def train(net, opt, batches, scheduler=None):
    for x, y in batches:
        opt.zero_grad()
        torch.nn.functional.mse_loss(net(x), y).backward()
        opt.step()
        if scheduler is not None:
            scheduler.step()


def assert_same_params(a, b, dtype):
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(q, p, **TOLERANCE[dtype], msg=name)


DERIVED = {spec.class_name for spec in fusedopt.functional.SPECS if spec.derived_state is not None}


class float64_scalar_state:
    """torch keeps NAdam's mu_product and ASGD's eta and mu in its default dtype, float32, where
    fusedopt computes them in float64: in float64 tests, torch runs with a float64 default."""

    def __init__(self, name):
        self.on = name in DERIVED

    def __enter__(self):
        self.default = torch.get_default_dtype()
        if self.on:
            torch.set_default_dtype(torch.float64)

    def __exit__(self, *exc):
        torch.set_default_dtype(self.default)


def compare(name, kwargs, dtype, steps=6):
    with float64_scalar_state(name if dtype == torch.float64 else ""):
        _compare(name, kwargs, dtype, steps)


def _compare(name, kwargs, dtype, steps):
    reference_net, fused_net = model(dtype), model(dtype)
    batches = data(dtype, steps)
    train(reference_net, getattr(torch.optim, name)(reference_net.parameters(), **kwargs), batches)
    train(fused_net, getattr(ft, name)(fused_net.parameters(), **kwargs), batches)
    # A float32 tensor hyperparameter (lr=torch.tensor(0.01)) enters torch's own arithmetic in float32:
    # torch.optim's trajectories with lr=torch.tensor(0.01) and lr=0.01 differ by 1e-9 in float64.
    tensor_hypers = any(isinstance(v, torch.Tensor) for v in kwargs.values()) or any(
        isinstance(x, torch.Tensor) for v in kwargs.values() if isinstance(v, tuple) for x in v)
    assert_same_params(reference_net, fused_net, torch.float32 if tensor_hypers else dtype)


TORCH_CASES = [(name, kwargs) for name, kwargs in CASES if hasattr(torch.optim, name) and name in ft.__all__]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("case", TORCH_CASES, ids=[case_id(c) for c in TORCH_CASES])
def test_training_matches_torch_optim(case, dtype):
    compare(*case, dtype)


def test_every_class_is_a_torch_optimizer_with_torchs_signature():
    import inspect

    specs = fusedopt.functional.SPECS + (fusedopt.functional.adafactor.spec,)
    assert {spec.class_name for spec in specs} == set(ft.__all__)
    with_torch_class = [spec for spec in specs if hasattr(torch.optim, spec.class_name)]
    for spec in with_torch_class:
        cls = getattr(ft, spec.class_name)
        assert issubclass(cls, torch.optim.Optimizer)
        ours = list(inspect.signature(cls.__init__).parameters.values())
        theirs = inspect.signature(getattr(torch.optim, spec.class_name).__init__).parameters
        assert [(p.name, p.default) for p in ours[:len(theirs)]] == [(p.name, p.default) for p in theirs.values()]
        precision = [] if spec.class_name == "Adafactor" else [  # fusedopt's mixed-precision options after torch's
            ("master_weights", False), ("state_dtype", None), ("rounding_seed", None)]
        assert [(p.name, p.default) for p in ours[len(theirs):]] == precision
        assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in ours[len(theirs):])


# --- torch's own optimizer database -----------------------------------------------------------------

def _optim_db():
    pytest.importorskip("expecttest")  # torch.testing._internal needs it
    from torch.testing._internal.common_optimizers import OptimizerErrorEnum, optim_db

    return [oi for oi in optim_db if oi.optim_cls.__name__ in ft.__all__], OptimizerErrorEnum


def _db_inputs():
    try:
        infos, _ = _optim_db()
    except BaseException:  # noqa: BLE001 - skipped at collection: the test below skips too
        return []
    return [(oi.optim_cls.__name__, i.kwargs, i.desc) for oi in infos for i in oi.optim_inputs_func(device="cpu")]


DB_INPUTS = _db_inputs()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("name,kwargs,desc", DB_INPUTS, ids=[f"{n}-{d}" for n, _, d in DB_INPUTS])
def test_optim_db_inputs_match_torch_optim(name, kwargs, desc, dtype):
    compare(name, dict(kwargs), dtype)


# Where we refuse or accept differently from torch, on purpose (the module docstring says why).
DIFFERENT_BY_DESIGN = re.compile(r"Tensor|capturable|foreach|duplicate")


def test_optim_db_construction_errors_are_raised_alike():
    infos, errors = _optim_db()
    checked = 0
    for oi in infos:
        for e in oi.optim_error_inputs_func(device="cpu", dtype=torch.float32):
            if e.error_on != errors.CONSTRUCTION_ERROR or DIFFERENT_BY_DESIGN.search(e.error_regex):
                continue
            params = e.optimizer_error_input.params
            if params is None:
                params = [torch.zeros(3, requires_grad=True)]
            with pytest.raises(e.error_type):
                getattr(ft, oi.optim_cls.__name__)(params, **e.optimizer_error_input.kwargs)
            checked += 1
    assert checked >= 10


# --- state dicts, schedulers, scalers ---------------------------------------------------------------

@pytest.mark.parametrize("name,kwargs", [("Adam", dict(lr=0.01, amsgrad=True)), ("SGD", dict(lr=0.1, momentum=0.9)),
                                         ("RMSprop", dict(centered=True, momentum=0.5)), ("Adagrad", dict(lr=0.1)),
                                         ("AdamW", dict(lr=0.01)), ("Adamax", dict(lr=0.01)),
                                         ("RAdam", dict(lr=0.01, decoupled_weight_decay=True, weight_decay=0.1)),
                                         ("Adadelta", dict()), ("Rprop", dict(lr=0.02)),
                                         ("NAdam", dict(lr=0.01, decoupled_weight_decay=True, weight_decay=0.1)),
                                         ("ASGD", dict(lr=0.05, t0=2, lambd=0.01))])
@pytest.mark.parametrize("first", ["torch", "fusedopt"])
def test_state_dicts_cross_both_ways_mid_run(name, kwargs, first):
    with float64_scalar_state(name):
        _state_dicts_cross(name, kwargs, first)


def _state_dicts_cross(name, kwargs, first):
    dtype = torch.float64
    batches = data(dtype, 8)
    straight = model(dtype)
    train(straight, getattr(torch.optim, name)(straight.parameters(), **kwargs), batches)
    a_cls, b_cls = (getattr(torch.optim, name), getattr(ft, name))[:: 1 if first == "torch" else -1]
    net = model(dtype)
    opt_a = a_cls(net.parameters(), **kwargs)
    train(net, opt_a, batches[:4])
    opt_b = b_cls(net.parameters(), **kwargs)
    opt_b.load_state_dict(opt_a.state_dict())
    assert opt_b.state_dict()["state"].keys() == opt_a.state_dict()["state"].keys()
    train(net, opt_b, batches[4:])
    assert_same_params(straight, net, dtype)


def test_lr_scheduler_drives_the_fused_optimizer_as_torchs():
    dtype = torch.float64
    batches = data(dtype, 8)
    a, b = model(dtype), model(dtype)
    oa, ob = torch.optim.SGD(a.parameters(), lr=0.1, momentum=0.9), ft.SGD(b.parameters(), lr=0.1, momentum=0.9)
    train(a, oa, batches, torch.optim.lr_scheduler.StepLR(oa, step_size=2, gamma=0.5))
    train(b, ob, batches, torch.optim.lr_scheduler.StepLR(ob, step_size=2, gamma=0.5))
    assert ob.param_groups[0]["lr"] == oa.param_groups[0]["lr"] == 0.1 * 0.5**4
    assert_same_params(a, b, dtype)


@pytest.mark.parametrize("change", ["tensor lr filled in place", "float lr replaced", "betas replaced"])
def test_hyperparameters_changed_between_steps_are_read_as_torch_reads_them(change):
    # the steady step keeps the converted hyperparameters while the group holds the same immutable
    # objects; each change here must still reach the next step, as it reaches torch's
    dtype = torch.float64
    batches = data(dtype, 6)
    a, b = model(dtype), model(dtype)
    lr = (lambda: torch.tensor(0.05, dtype=dtype)) if change.startswith("tensor") else (lambda: 0.05)
    oa, ob = torch.optim.Adam(a.parameters(), lr=lr()), ft.Adam(b.parameters(), lr=lr())
    for k, batch in enumerate(batches):
        for net, opt in ((a, oa), (b, ob)):
            train(net, opt, [batch])
            group = opt.param_groups[0]
            if change.startswith("tensor"):
                group["lr"].fill_(0.05 / (k + 2))
            elif change.startswith("float"):
                group["lr"] = 0.05 / (k + 2)
            else:
                group["betas"] = (0.9 - 0.1 * (k % 2), 0.999)
    assert_same_params(a, b, dtype)


def test_grad_scaler_skips_a_step_with_an_inf_gradient_and_changes_nothing():
    net = model(torch.float32)
    opt = ft.Adam(net.parameters(), lr=0.01)
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    x, y = data(torch.float32, 1)[0]
    scaler.scale(torch.nn.functional.mse_loss(net(x), y)).backward()
    scaler.step(opt)
    scaler.update()
    before = [p.detach().clone() for p in net.parameters()]
    state_before = {k: v.clone() for k, v in opt.state[next(iter(net.parameters()))].items()}
    opt.zero_grad()
    scaler.scale(torch.nn.functional.mse_loss(net(x), y)).backward()
    next(iter(net.parameters())).grad[0, 0] = float("inf")
    scaler.step(opt)
    scaler.update()
    for p, p0 in zip(net.parameters(), before):
        assert torch.equal(p, p0)
    for k, v in opt.state[next(iter(net.parameters()))].items():
        assert torch.equal(v, state_before[k])
    assert scaler.get_scale() == 512.0


def test_the_update_is_in_place_without_copies_and_closures_and_zero_grad_work():
    net = model(torch.float32)
    opt = ft.Adam(net.parameters(), lr=0.01)
    pointers = [p.data_ptr() for p in net.parameters()]
    before = [p.detach().clone() for p in net.parameters()]
    x, y = data(torch.float32, 1)[0]

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(net(x), y)
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert isinstance(loss, torch.Tensor)
    assert [p.data_ptr() for p in net.parameters()] == pointers
    assert all(not torch.equal(p, p0) for p, p0 in zip(net.parameters(), before))
    assert all(opt.state[p]["exp_avg"].data_ptr() == opt.state[p]["exp_avg"].data_ptr() for p in net.parameters())
    opt.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_params_without_a_grad_are_skipped_as_torch_skips_them():
    dtype = torch.float64
    a, b = model(dtype), model(dtype)
    for net in (a, b):
        net[0].bias.requires_grad_(False)
    batches = data(dtype, 4)
    train(a, torch.optim.Adam(a.parameters(), lr=0.01), batches)
    opt = ft.Adam(b.parameters(), lr=0.01)
    train(b, opt, batches)
    assert_same_params(a, b, dtype)
    assert b[0].bias not in opt.state


@pytest.mark.parametrize("bad,error,words", [
    ("complex", TypeError, "complex64"),
    ("int", TypeError, "int32"),
    ("sparse grad", TypeError, "sparse"),
    ("non-contiguous", ValueError, "contiguous"),
    ("capturable", ValueError, "capturable"),
    ("differentiable", ValueError, "differentiable"),
])
def test_what_the_kernels_cannot_take_is_refused_clearly_and_changes_nothing(bad, error, words):
    p = torch.zeros(4, 3, requires_grad=True)
    kwargs = {}
    if bad == "complex":
        p = torch.zeros(4, 3, dtype=torch.complex64, requires_grad=True)
    elif bad == "int":
        p = torch.zeros(4, 3, dtype=torch.int32)
    elif bad == "non-contiguous":
        p = torch.zeros(3, 4).t().requires_grad_()
    elif bad in ("capturable", "differentiable"):
        kwargs[bad] = True
    if bad in ("capturable", "differentiable"):
        with pytest.raises(error, match=words):
            ft.Adam([p], **kwargs)
        return
    opt = ft.Adam([p], lr=0.1)
    p.grad = torch.ones_like(p).to_sparse() if bad == "sparse grad" else torch.ones_like(p)
    before = p.detach().clone()
    with pytest.raises(error, match=rf"param_groups\[0\]\['params'\]\[0\].*{words}|{words}"):
        opt.step()
    assert torch.equal(p.detach(), before)


def test_tensor_hyperparameters_and_decoupled_weight_decay():
    dtype = torch.float64
    compare("Adam", dict(lr=torch.tensor(0.01), betas=(torch.tensor(0.8), torch.tensor(0.99))), dtype)
    compare("Adam", dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True), dtype)
    with pytest.raises(ValueError, match="1-element"):
        ft.Adam([torch.zeros(2, requires_grad=True)], lr=torch.tensor([0.1, 0.2]))


def test_fusedopt_init_fills_torch_tensors_in_place():
    w = torch.nn.Linear(30, 20).weight
    pointer = w.data_ptr()
    fusedopt.init.kaiming_uniform_(w, a=5**0.5, seed=3)
    expected = np.zeros((20, 30), np.float32)
    fusedopt.init.kaiming_uniform_(expected, a=5**0.5, seed=3)
    assert w.data_ptr() == pointer and w.requires_grad
    np.testing.assert_array_equal(w.detach().numpy(), expected)


def test_zero_redundancy_optimizer_with_two_gloo_processes_matches_single_process_torch_adam(tmp_path):
    """torch.distributed.optim.ZeroRedundancyOptimizer(optimizer_class=fusedopt.torch.Adam) over DDP,
    2 processes on 127.0.0.1 (gloo, spawn), each its half of every batch: the same params as one
    process training torch.optim.Adam on the whole batches."""
    import socket
    import subprocess
    import sys
    from pathlib import Path

    pytest.importorskip("torch.distributed")
    if not torch.distributed.is_available() or not torch.distributed.is_gloo_available():
        pytest.skip("torch built without gloo")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "params.pt"
    worker = Path(__file__).with_name("torch_zero_worker.py")
    run = subprocess.run([sys.executable, str(worker), str(port), str(out)], capture_output=True, text=True,
                         timeout=240)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    sys.path.insert(0, str(worker.parent))
    import torch_zero_worker as w

    net = w.model()
    opt = torch.optim.Adam(net.parameters(), lr=0.01, weight_decay=0.1)
    for x, y in w.batches():
        opt.zero_grad()
        torch.nn.functional.mse_loss(net(x), y).backward()
        opt.step()
    for p, q in zip(net.parameters(), torch.load(out)):
        torch.testing.assert_close(q, p.detach(), rtol=1e-10, atol=1e-12)


def test_changes_between_steps_are_seen_by_the_steady_path():
    """After steady steps (reused views), a replaced state tensor, a param given new memory
    (``p.data = ...``) and a new hyperparameter are all used by the next step, as torch uses them."""
    dtype = torch.float64
    batches = data(dtype, 12)
    a, b = model(dtype), model(dtype)
    oa, ob = torch.optim.Adam(a.parameters(), lr=0.01), ft.Adam(b.parameters(), lr=0.01)
    train(a, oa, batches[:3])
    train(b, ob, batches[:3])
    for net, opt in ((a, oa), (b, ob)):
        first = next(iter(net.parameters()))
        opt.state[first]["exp_avg"] = torch.zeros_like(first)
    train(a, oa, batches[3:5])
    train(b, ob, batches[3:5])
    assert_same_params(a, b, dtype)
    for net in (a, b):
        last = list(net.parameters())[-1]
        last.data = last.data.clone()
    train(a, oa, batches[5:7])
    train(b, ob, batches[5:7])
    assert_same_params(a, b, dtype)
    for opt in (oa, ob):
        opt.param_groups[0]["betas"] = (0.5, 0.9)
    train(a, oa, batches[7:])
    train(b, ob, batches[7:])
    assert_same_params(a, b, dtype)


@pytest.mark.parametrize("name,kwargs", [("Adagrad", dict(initial_accumulator_value=0.3)), ("Adam", {}), ("SGD", {})])
def test_state_dict_before_any_step_is_torchs(name, kwargs):
    """torch.optim.Adagrad makes its state at construction; the others at the first step."""
    a, b = model(torch.float32), model(torch.float32)
    sa = getattr(torch.optim, name)(a.parameters(), **kwargs).state_dict()
    sb = getattr(ft, name)(b.parameters(), **kwargs).state_dict()
    assert sa["param_groups"] == sb["param_groups"]
    assert sa["state"].keys() == sb["state"].keys()
    for i in sa["state"]:
        assert sa["state"][i].keys() == sb["state"][i].keys()
        for k, v in sa["state"][i].items():
            assert torch.equal(v, sb["state"][i][k]) and v.dtype == sb["state"][i][k].dtype


STEADY_BREAKERS = {  # after steady steps, a change the steady path must see: (make the change, error or None)
    "sparse grad": (lambda p: setattr(p, "grad", torch.ones_like(p).to_sparse()), TypeError),
    "non-contiguous grad": (lambda p: setattr(p, "grad", torch.ones(p.shape[::-1], dtype=p.dtype).t()), ValueError),
    "grad of another dtype by .data": (lambda p: setattr(p.grad, "data", torch.ones_like(p, dtype=torch.float32)),
                                       TypeError),
    "grad of another size by .data": (lambda p: setattr(p.grad, "data", torch.ones(3, dtype=p.dtype)), None),
    "grad of a tensor subclass": (lambda p: setattr(p, "grad", torch.nn.Parameter(torch.ones_like(p))), None),
    "negative-bit grad": (lambda p: setattr(p, "grad", torch._neg_view(torch.ones_like(p))), ValueError),
    "param given new memory": (lambda p: setattr(p, "data", p.data.clone()), None),
    "state buffer given new memory": (lambda p: None, None),  # done through the optimizer below
    "state replaced": (lambda p: None, None),
    "state entries reinserted in another order": (lambda p: None, None),
    "param's state moved to the end of opt.state": (lambda p: None, None),
}


@pytest.mark.parametrize("change", list(STEADY_BREAKERS))
def test_the_steady_path_sees_every_change_after_steady_steps(change):
    """Steady steps (the grads gathered in C++ by data pointer) and then one change: a bad grad is
    refused as on a first step, with nothing changed; any other change gives torch's numbers."""
    dtype = torch.float64
    batches = data(dtype, 6)
    a, b = model(dtype), model(dtype)
    oa, ob = torch.optim.Adam(a.parameters(), lr=0.01), ft.Adam(b.parameters(), lr=0.01)
    train(a, oa, batches[:3])
    train(b, ob, batches[:3])
    assert 0 in ob._steady  # the steady path was taken
    make, error = STEADY_BREAKERS[change]
    pa, pb = a[0].weight, b[0].weight
    for net, opt in ((a, oa), (b, ob)):
        opt.zero_grad()
        torch.nn.functional.mse_loss(net(batches[3][0]), batches[3][1]).backward()
    before = [p.detach().clone() for p in b.parameters()] + [t.clone() for s in ob.state.values() for t in s.values()]
    if change == "grad of another size by .data":  # torch itself refuses it (its foreach kernels)
        make(pb)
        with pytest.raises((RuntimeError, ValueError)):
            ob.step()
        after = [p.detach() for p in b.parameters()] + [t for s in ob.state.values() for t in s.values()]
        assert all(torch.equal(x, y) for x, y in zip(before, after))
        return
    if change == "state buffer given new memory":
        for opt in (oa, ob):
            opt.state[opt.param_groups[0]["params"][0]]["exp_avg"].data = torch.full_like(pa, 0.5)
    elif change == "state replaced":
        for opt, p in ((oa, pa), (ob, pb)):
            opt.state[p] = {k: v.clone() for k, v in opt.state[p].items()}
    elif change == "state entries reinserted in another order":
        for opt, p in ((oa, pa), (ob, pb)):
            entries = list(opt.state[p].items())
            opt.state[p].clear()
            opt.state[p].update(reversed(entries))
    elif change == "param's state moved to the end of opt.state":
        for opt, p in ((oa, pa), (ob, pb)):
            opt.state[p] = opt.state.pop(p)
    else:
        make(pb)
        if error is None:
            make(pa)
    if error is not None:
        with pytest.raises(error):
            ob.step()
        after = [p.detach() for p in b.parameters()] + [t for s in ob.state.values() for t in s.values()]
        assert all(torch.equal(x, y) for x, y in zip(before, after))
        return
    oa.step()
    ob.step()
    train(a, oa, batches[4:])
    train(b, ob, batches[4:])
    assert_same_params(a, b, dtype)


class _CountingParameter(torch.nn.Parameter):
    """A Parameter subclass that overrides data_ptr (the steady path must not call around it)."""

    calls = 0

    def data_ptr(self):
        _CountingParameter.calls += 1
        return super().data_ptr()


def test_a_param_subclass_overriding_data_ptr_takes_the_general_path_with_torchs_numbers():
    dtype = torch.float64
    batches = data(dtype, 5)
    a, b = model(dtype), model(dtype)
    for net in (a, b):
        net[0].weight = _CountingParameter(net[0].weight.detach().clone())
    oa, ob = torch.optim.Adam(a.parameters(), lr=0.01), ft.Adam(b.parameters(), lr=0.01)
    train(a, oa, batches)
    _CountingParameter.calls = 0
    train(b, ob, batches)
    assert 0 not in ob._steady and _CountingParameter.calls >= len(batches)
    assert_same_params(a, b, dtype)


def test_a_scheduler_changing_lr_every_step_keeps_the_steady_path_and_torchs_numbers():
    dtype = torch.float64
    batches = data(dtype, 8)
    a, b = model(dtype), model(dtype)
    oa, ob = torch.optim.Adam(a.parameters(), lr=0.05), ft.Adam(b.parameters(), lr=0.05)
    sa = torch.optim.lr_scheduler.ExponentialLR(oa, gamma=0.7)
    sb = torch.optim.lr_scheduler.ExponentialLR(ob, gamma=0.7)
    train(a, oa, batches[:2], sa)
    train(b, ob, batches[:2], sb)
    steady = ob._steady[0]
    train(a, oa, batches[2:], sa)
    train(b, ob, batches[2:], sb)
    assert ob._steady[0] is steady
    assert_same_params(a, b, dtype)
    ob.param_groups[0]["lr"] = -1.0
    with pytest.raises(ValueError, match="lr"):
        ob.step()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
def test_lion_which_torch_lacks_trains_as_fusedopt_lion_and_its_reference(dtype):
    """fusedopt.torch.Lion: a torch.optim.Optimizer with fusedopt.Lion's signature (and torch's
    keyword-only switches); a small model trained with it equals the float64 reference run on the same
    grads (its state is in torch's format: step and exp_avg)."""
    import inspect

    from fusedopt import reference

    assert issubclass(ft.Lion, torch.optim.Optimizer)
    names = list(inspect.signature(ft.Lion.__init__).parameters)
    assert names[:6] == ["self", "params", "lr", "betas", "weight_decay", "maximize"]
    assert names[6:] == ["foreach", "capturable", "differentiable", "fused", "master_weights", "state_dtype",
                         "rounding_seed"]
    net = model(dtype)
    kwargs = dict(lr=0.01, betas=(0.8, 0.95), weight_decay=0.1)
    opt = ft.Lion(net.parameters(), **kwargs)
    expected = [p.detach().double().numpy().copy() for p in net.parameters()]
    states = [{} for _ in expected]
    for x, y in data(dtype, 5):
        opt.zero_grad()
        torch.nn.functional.mse_loss(net(x), y).backward()
        grads = [p.grad.double().numpy().copy() for p in net.parameters()]
        opt.step()
        for p, g, s in zip(expected, grads, states):
            reference.lion(p, g, s, **kwargs)
    for p, e in zip(net.parameters(), expected):
        np.testing.assert_allclose(p.detach().double().numpy(), e, rtol=1e-5 if dtype == torch.float32 else 1e-12,
                                   atol=1e-6 if dtype == torch.float32 else 1e-14)
    state = opt.state_dict()["state"][0]
    assert set(state) == {"step", "exp_avg"} and float(state["step"]) == 5
    with pytest.raises(ValueError, match="capturable"):
        ft.Lion(net.parameters(), capturable=True)
