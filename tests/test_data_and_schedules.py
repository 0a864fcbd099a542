"""fusedopt.data (mini-batches without replacement) and fusedopt.schedules (against their formulas,
and against torch's schedulers where torch has the same one)."""

import math

import numpy as np
import pytest

import fusedopt
from fusedopt import data, schedules


# --- mini-batches -------------------------------------------------------------------------------

@pytest.mark.parametrize("n,batch,epochs,drop_last,expected", [
    (20, 5, 3, False, 12), (5, 2, 1, False, 3), (5, 2, 1, True, 2), (7, 7, 2, False, 2), (7, 10, 1, False, 1),
    (7, 10, 1, True, 0), (1, 1, 4, False, 4), (1000, 1, 1, False, 1000), (10, 3, 0, False, 0)])
def test_num_updates_counts_the_batches_minibatches_yields(n, batch, epochs, drop_last, expected):
    assert data.num_updates(n, batch, epochs, drop_last) == expected
    assert len(list(data.minibatches(n, batch, epochs=epochs, drop_last=drop_last, seed=0))) == expected


def test_the_issue_examples():
    assert data.num_updates(20, 5, 3) == 12
    assert [len(b) for b in data.minibatches(5, 2, seed=0)] == [2, 2, 1]


@pytest.mark.parametrize("n,batch", [(1, 1), (17, 4), (64, 64), (100, 1), (33, 10)])
@pytest.mark.parametrize("drop_last", [False, True])
def test_every_index_once_per_epoch_in_a_fresh_order(n, batch, drop_last):
    epochs = 4
    batches = list(data.minibatches(n, batch, epochs=epochs, drop_last=drop_last, seed=3))
    per_epoch = data.num_updates(n, batch, 1, drop_last)
    orders = []
    for e in range(epochs):
        chunk = batches[e * per_epoch:(e + 1) * per_epoch]
        assert all(len(b) == batch for b in chunk[:-1])
        seen = np.concatenate(chunk) if chunk else np.array([], int)
        assert len(np.unique(seen)) == len(seen)  # without replacement
        if drop_last:
            assert len(seen) == n - n % batch and all(len(b) == batch for b in chunk)
        else:
            assert sorted(seen.tolist()) == list(range(n))  # every index exactly once
        assert seen.dtype == np.int64 or seen.dtype == np.intp
        orders.append(seen.tolist())
    if n >= 17:
        assert len({tuple(o) for o in orders}) == epochs  # each epoch its own permutation


def test_seeds_reproduce_and_shuffle_false_keeps_the_order():
    a = [b.tolist() for b in data.minibatches(50, 8, epochs=3, seed=7)]
    b = [b.tolist() for b in data.minibatches(50, 8, epochs=3, seed=7)]
    c = [b.tolist() for b in data.minibatches(50, 8, epochs=3, seed=8)]
    assert a == b and a != c
    g1, g2 = np.random.default_rng(5), np.random.default_rng(5)
    assert [x.tolist() for x in data.minibatches(9, 4, seed=g1)] == [x.tolist() for x in data.minibatches(9, 4, seed=g2)]
    assert [x.tolist() for x in data.minibatches(5, 2, shuffle=False, epochs=2)] == [[0, 1], [2, 3], [4]] * 2


@pytest.mark.parametrize("kwargs,error,words", [
    (dict(n=0, batch_size=1), ValueError, "n: expected an int >= 1, got 0"),
    (dict(n=5, batch_size=0), ValueError, "batch_size: expected an int >= 1, got 0"),
    (dict(n=5.0, batch_size=1), TypeError, "n: expected an int, got float"),
    (dict(n=5, batch_size=True), TypeError, "batch_size: expected an int, got bool"),
    (dict(n=5, batch_size=2, epochs=-1), ValueError, "epochs: expected an int >= 0"),
    (dict(n=5, batch_size=2, seed=-1), ValueError, "seed: expected an int >= 0"),
    (dict(n=5, batch_size=2, seed="x"), TypeError, "seed: expected an int, got str")])
def test_bad_arguments_are_refused_at_the_call(kwargs, error, words):
    with pytest.raises(error, match=words):
        data.minibatches(**kwargs)  # at the call, not at the first next()


# --- schedules ----------------------------------------------------------------------------------

def cosine_formula(lr, eta_min, t, period):
    return eta_min + (lr - eta_min) * (1 + math.cos(math.pi * t / period)) / 2


FORMULAS = [
    (schedules.constant(0.3), lambda t: 0.3),
    (schedules.step_decay(0.1, step_size=3, gamma=0.5), lambda t: 0.1 * 0.5 ** (t // 3)),
    (schedules.multi_step(0.1, [2, 5, 9], gamma=0.1), lambda t: 0.1 * 0.1 ** sum(m <= t for m in (2, 5, 9))),
    (schedules.exponential(0.2, gamma=0.9), lambda t: 0.2 * 0.9 ** t),
    (schedules.cosine(0.1, T_max=10, eta_min=0.01), lambda t: cosine_formula(0.1, 0.01, min(t, 10), 10)),
    (schedules.cosine_warm_restarts(0.1, T_0=4, T_mult=1, eta_min=0.0), lambda t: cosine_formula(0.1, 0.0, t % 4, 4)),
    # cycles of 3, 6, 12 steps starting at 0, 3, 9, 21
    (schedules.cosine_warm_restarts(0.1, T_0=3, T_mult=2),
     lambda t: cosine_formula(0.1, 0.0, *((t, 3) if t < 3 else (t - 3, 6) if t < 9 else (t - 9, 12) if t < 21
                                          else (t - 21, 24)))),
    (schedules.linear_warmup(schedules.cosine(0.1, T_max=10), warmup_steps=5),
     lambda t: 0.1 * t / 5 if t < 5 else cosine_formula(0.1, 0.0, min(t - 5, 10), 10)),
    (schedules.linear_warmup(schedules.step_decay(0.2, 4), warmup_steps=2, start_factor=0.5),
     lambda t: 0.2 * (0.5 + 0.5 * t / 2) if t < 2 else 0.2 * 0.1 ** ((t - 2) // 4)),
]


@pytest.mark.parametrize("schedule,formula", FORMULAS, ids=[repr(s) for s, _ in FORMULAS])
def test_schedules_follow_their_formulas(schedule, formula):
    for t in range(40):
        assert schedule(t) == pytest.approx(formula(t), rel=1e-12, abs=1e-15), t


def test_linear_scaling_rule():
    assert schedules.linear_scaling(0.1, 1024) == pytest.approx(0.4)
    assert schedules.linear_scaling(0.1, 32, base_batch_size=32) == pytest.approx(0.1)
    with pytest.raises(ValueError, match="batch_size"):
        schedules.linear_scaling(0.1, 0)


def test_a_schedule_drives_a_fusedopt_optimizer():
    p = np.zeros(3)
    opt = fusedopt.SGD([p], lr=1.0)
    sched = schedules.exponential(0.5, gamma=0.5)
    for t in range(4):
        assert sched.apply(opt, t) == 0.5 * 0.5 ** t
        opt.step([np.ones(3)])
    np.testing.assert_allclose(p, -np.full(3, 0.5 + 0.25 + 0.125 + 0.0625))


@pytest.mark.parametrize("bad,error", [(dict(step=-1), ValueError), (dict(step=1.5), TypeError)])
def test_bad_steps_and_hyperparameters_are_refused(bad, error):
    with pytest.raises(error, match="step"):
        schedules.constant(0.1)(bad["step"])
    with pytest.raises(ValueError, match="T_max"):
        schedules.cosine(0.1, T_max=0)
    with pytest.raises(ValueError, match="milestones"):
        schedules.multi_step(0.1, [5, 3])
    with pytest.raises(ValueError, match="lr"):
        schedules.constant(float("nan"))
    with pytest.raises(TypeError, match="schedule"):
        schedules.linear_warmup(lambda t: 0.1, 5)
    with pytest.raises(ValueError, match="at step 1000 overflows"):
        schedules.exponential(0.1, gamma=10.0)(1000)
    with pytest.raises(TypeError, match="param_groups"):
        schedules.constant(0.1).apply({"lr": 1.0}, 0)


def _torch_lrs(make, steps, lr):
    torch = pytest.importorskip("torch")
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
    sched = make(torch, opt)
    lrs = []
    for _ in range(steps):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs


@pytest.mark.parametrize("ours,theirs", [
    (schedules.step_decay(0.1, 3, 0.5), lambda torch, o: torch.optim.lr_scheduler.StepLR(o, 3, 0.5)),
    (schedules.multi_step(0.1, [2, 5], 0.3), lambda torch, o: torch.optim.lr_scheduler.MultiStepLR(o, [2, 5], 0.3)),
    (schedules.exponential(0.1, 0.8), lambda torch, o: torch.optim.lr_scheduler.ExponentialLR(o, 0.8)),
    (schedules.cosine(0.1, 12, 0.01), lambda torch, o: torch.optim.lr_scheduler.CosineAnnealingLR(o, 12, 0.01)),
    (schedules.cosine_warm_restarts(0.1, 3, 2, 0.001),
     lambda torch, o: torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(o, 3, 2, 0.001)),
], ids=["step", "multi_step", "exponential", "cosine", "warm_restarts"])
def test_schedules_equal_torchs_schedulers(ours, theirs):
    steps = 13 if "cosine(" in repr(ours) else 30  # torch's cosine rises again after T_max; ours stays at eta_min
    assert _torch_lrs(theirs, steps, ours.lr) == pytest.approx([ours(t) for t in range(steps)], rel=1e-9)


def test_a_schedule_drives_torchs_lambda_lr():
    ours = schedules.linear_warmup(schedules.cosine(0.05, 20), 5)
    lrs = _torch_lrs(lambda torch, o: torch.optim.lr_scheduler.LambdaLR(o, lr_lambda=ours.lr_lambda), 30, ours.lr)
    assert lrs == pytest.approx([ours(t) for t in range(30)], rel=1e-12)
