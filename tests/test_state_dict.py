"""state_dict round trip: save -> load -> continue equals an uninterrupted run, bit for bit."""

import pickle

import numpy as np
import pytest

from cases import CASES, case_id, make_optimizer, random_grads, random_params

SHAPES = [(13,), (4, 5), (0,)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("case", CASES, ids=[case_id(c) for c in CASES])
def test_save_load_continue_is_bit_identical(case, dtype):
    name, kwargs = case
    rng = np.random.default_rng(5)
    grads = [random_grads(SHAPES, dtype, rng) for _ in range(8)]

    params = random_params(SHAPES, dtype, 6)
    opt = make_optimizer(name, params, kwargs)
    for g in grads[:4]:
        opt.step(g)
    saved_params = [p.copy() for p in params]
    saved = pickle.loads(pickle.dumps(opt.state_dict()))
    opt.param_groups[0]["lr"] *= 0.5  # after the save: must not leak into the snapshot
    for g in grads[4:]:
        opt.step(g)

    resumed = make_optimizer(name, saved_params, kwargs)
    resumed.load_state_dict(saved)
    resumed.param_groups[0]["lr"] *= 0.5
    for g in grads[4:]:
        resumed.step(g)

    for p, q in zip(params, saved_params):
        assert p.tobytes() == q.tobytes()
    for i, s in opt.state.items():
        for k, v in s.items():
            assert (v.tobytes() == resumed.state[i][k].tobytes()) if isinstance(v, np.ndarray) else v == resumed.state[i][k]


def test_state_dict_is_a_snapshot_with_torch_layout():
    params = random_params([(3,), (2,)], np.float64, 0)
    opt = make_optimizer("Adam", [{"params": [params[0]]}, {"params": [params[1]], "lr": 0.1}], {})
    opt.step([np.ones(3), np.ones(2)])
    sd = opt.state_dict()
    assert [g["params"] for g in sd["param_groups"]] == [[0], [1]]
    assert sd["param_groups"][1]["lr"] == 0.1 and sd["state"][1]["step"] == 1
    before = sd["state"][0]["exp_avg"].copy()
    opt.step([np.ones(3), np.ones(2)])
    assert np.array_equal(sd["state"][0]["exp_avg"], before)


def test_load_rejects_mismatched_state():
    params = random_params([(3,)], np.float64, 0)
    opt = make_optimizer("Adam", params, {})
    opt.step([np.ones(3)])
    sd = opt.state_dict()
    sd["state"][0]["exp_avg"] = np.zeros(4)
    fresh = make_optimizer("Adam", [p.copy() for p in params], {})
    with pytest.raises(ValueError, match="exp_avg"):
        fresh.load_state_dict(sd)
    assert fresh.state == {}
    two = make_optimizer("Adam", [np.zeros(3), np.zeros(1)], {})
    with pytest.raises(ValueError, match="params"):
        two.load_state_dict(opt.state_dict())
