"""Memory safety and concurrency, tried as a hostile user would (one test per finding of the safety
issue): every case ends in the right answer (checked against fusedopt.reference) or a clear
TypeError/ValueError naming the argument, with not one byte of any param or state changed."""

import ctypes
import ctypes.util
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import fusedopt
from fusedopt import _core, reference
from fusedopt import functional as F

from cases import CASES, REFERENCE, case_id, make_optimizer


def assert_bytes_unchanged(arrays, before):
    for a, a0 in zip(arrays, before):
        assert a.tobytes() == a0.tobytes()


def run_python(code: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=300, env={**__import__("os").environ, **env})


# --- 1. use-after-free: a GIL-free step holds every array it reads --------------------------------

USE_AFTER_FREE = """
    import threading, time
    import numpy as np
    import fusedopt
    N = 20_000_000
    during = 0
    for attempt in range(20):
        p = np.zeros(N)
        grads = [np.ones(N)]
        {setup}
        dropped = []
        def drop():
            time.sleep(0.005)
            grads.clear()                       # the last reference to the gradient
            dropped.append(time.perf_counter())
            junk = [np.full(N, 7.0) for _ in range(2)]  # reuse of the freed memory, if it were freed
        t = threading.Thread(target=drop)
        t.start()
        start = time.perf_counter()
        try:
            {call}
        except ValueError as e:                 # the list was emptied before the step read it
            assert "grads" in str(e) and not p.any(), e
            t.join()
            continue
        end = time.perf_counter()
        t.join()
        assert (p == -1.0).all(), (attempt, np.unique(p)[:5])
        during += start < dropped[0] < end      # the drop landed while the step ran
        if during == 3:
            break
    assert during >= 1, "the drop never landed during a step"
    print("ok", during)
"""


@pytest.mark.parametrize("setup,call", [
    ("", "fusedopt.functional.sgd([p], grads, step=1, lr=1.0)"),
    ("opt = fusedopt.SGD([p], lr=1.0)", "opt.step(grads)"),
], ids=["functional", "optimizer"])
def test_a_gradient_freed_by_another_thread_during_the_step_is_still_read_whole(setup, call):
    run = run_python(USE_AFTER_FREE.format(setup=setup, call=call))
    assert run.returncode == 0 and run.stdout.startswith("ok"), run.stdout + run.stderr[-3000:]


def test_a_plan_holds_its_params_and_state_after_the_user_drops_them():
    params = [np.zeros(1000), np.zeros(10)]
    opt = fusedopt.Adam(params, lr=0.1)
    opt.step([np.ones(1000), np.ones(10)])
    kept = [p.copy() for p in params]
    ref_state = [{"step": 1, "exp_avg": opt.state[i]["exp_avg"].copy(), "exp_avg_sq": opt.state[i]["exp_avg_sq"].copy()}
                 for i in range(2)]
    del params
    opt.step([np.ones(1000), np.ones(10)])
    for i, p in enumerate(kept):
        reference.adam(p, np.ones_like(p), ref_state[i], lr=0.1)
        np.testing.assert_allclose(opt._params[i], p, rtol=1e-12)


# --- 2. overlapping arrays -------------------------------------------------------------------------

def adam_lists(n=100, count=1):
    rng = np.random.default_rng(0)
    return ([rng.standard_normal(n) for _ in range(count)], [rng.standard_normal(n) for _ in range(count)],
            [np.zeros(n) for _ in range(count)], [np.zeros(n) for _ in range(count)])


def test_the_same_arrays_listed_twice_are_refused_and_unchanged():
    p, g, m, v = (x[0] for x in adam_lists())
    before = [a.copy() for a in (p, g, m, v)]
    with pytest.raises(ValueError, match=r"(params|grads|exp_avgs|exp_avg_sqs)\[1\]: shares memory with \1\[0\]"):
        F.adam([p, p], [g, g], [m, m], [v, v], step=1)
    assert_bytes_unchanged((p, g, m, v), before)


@pytest.mark.parametrize("layout", ["grad is the param shifted by one", "state overlaps the param",
                                    "two states overlap", "state overlaps another param's grad",
                                    "float32 view of a float64 grad"])
def test_arrays_sharing_memory_are_refused_and_unchanged(layout):
    base = np.random.default_rng(1).standard_normal(402)
    p, g, m, v = (x[0] for x in adam_lists(200))
    params, grads, ms, vs = [p], [g], [m], [v]
    if layout == "grad is the param shifted by one":
        params, grads = [base[:200]], [base[1:201]]
        words = r"grads\[0\]: shares memory with params\[0\]"
    elif layout == "state overlaps the param":
        params, ms = [base[:200]], [base[100:300]]
        words = r"exp_avgs\[0\]: shares memory with params\[0\]"
    elif layout == "two states overlap":
        ms, vs = [base[:200]], [base[199:399]]
        words = r"exp_avg_sqs\[0\]: shares memory with exp_avgs\[0\]"
    elif layout == "state overlaps another param's grad":
        params, grads = [p, np.zeros(200)], [g, base[:200]]
        ms, vs = [m, base[150:350]], [v, np.zeros(200)]
        words = r"grads\[1\]: shares memory with exp_avgs\[1\]"
    else:
        params, ms, vs = [np.zeros(100, np.float32)], [np.zeros(100, np.float32)], [np.zeros(100, np.float32)]
        grads = [g[:50].view(np.float32)]
        ms = [g[25:75].view(np.float32)]
        words = r"grads\[0\]: shares memory with exp_avgs\[0\]"
    everything = [base] + params + grads + ms + vs
    before = [a.copy() for a in everything]
    with pytest.raises(ValueError, match=words):
        F.adam(params, grads, ms, vs, step=1, lr=0.1)
    assert_bytes_unchanged(everything, before)


def test_adjacent_views_of_one_buffer_and_a_grad_that_is_its_param_are_right():
    """Touching but disjoint views are fine, and so is a grad that is exactly its param."""
    base = np.random.default_rng(2).standard_normal(300)
    params = [base[:100], base[100:300]]
    expected = [p.copy() for p in params]
    F.sgd(params, [params[0], np.ones(200)], step=1, lr=0.1, weight_decay=0.01)
    for p, g in zip(expected, [expected[0].copy(), np.ones(200)]):
        reference.sgd(p, g, {}, lr=0.1, weight_decay=0.01)
    np.testing.assert_allclose(base, np.concatenate(expected), rtol=1e-12)  # FMA vs two roundings


def test_params_sharing_memory_are_refused_by_the_optimizer():
    p = np.zeros(10)
    for params in ([p, p[:]], [p, p[3:5]], [p[:6], p[5:]]):
        with pytest.raises(ValueError, match=r"\['params'\]\[1\]: shares memory with .*\['params'\]\[0\]"):
            fusedopt.SGD(params, lr=0.1)
    opt = fusedopt.SGD([p], lr=0.1)
    with pytest.raises(ValueError, match=r"param_groups\[1\]\['params'\]\[0\]: shares memory"):
        opt.add_param_group({"params": [p.reshape(2, 5)]})
    assert len(opt.param_groups) == 1 and len(opt._params) == 1


def test_an_optimizer_step_with_overlapping_grads_or_state_is_refused_and_changes_nothing():
    rng = np.random.default_rng(3)
    params = [rng.standard_normal(50), rng.standard_normal(50).astype(np.float32)]
    opt = fusedopt.Adam([{"params": [params[0]]}, {"params": [params[1]], "lr": 0.5}])
    opt.step([np.ones(50), np.ones(50, np.float32)])
    before = [p.copy() for p in params], {i: {k: np.copy(v) for k, v in s.items()} for i, s in opt.state.items()}

    def unchanged():
        assert_bytes_unchanged(params, before[0])
        for i, s in before[1].items():
            for k, v in s.items():
                assert np.asarray(opt.state[i][k]).tobytes() == v.tobytes()

    with pytest.raises(ValueError, match=r"grads\[1\]: shares memory with param_groups\[0\]\['params'\]\[0\]"):
        opt.step([np.ones(50), params[0][:25].view(np.float32)])
    unchanged()
    shared = np.ones(50)
    with pytest.raises(ValueError, match=r"grads\[1\]: shares memory with grads\[0\]"):
        opt.step([shared, shared.view(np.float32)[:50]])
    unchanged()
    # a state buffer of one group set to a view of the other group's param: across the plan's calls
    opt.state[1]["exp_avg"] = params[0].view(np.float32)[:50]
    with pytest.raises(ValueError, match=r"state\[1\]\['exp_avg'\]: shares memory with param_groups\[0\]"):
        opt.step([np.ones(50), np.ones(50, np.float32)])
    assert_bytes_unchanged(params, before[0])


# --- 3. one optimizer stepped from several Python threads -------------------------------------------

@pytest.mark.parametrize("name", ["SGD", "Adam"])
def test_steps_from_several_threads_are_all_counted_and_give_the_serial_result(name):
    """Every step is the same gradient, so the order does not matter: 4 threads x 10 steps must equal
    40 steps on one thread, bit for bit, and count 40."""
    n, threads, steps = 50_000, 4, 10  # above the serial threshold: each step releases the GIL
    grad = np.random.default_rng(4).standard_normal(n)
    shared, serial = np.zeros(n), np.zeros(n)
    opt = make_optimizer(name, [shared], dict(lr=0.01))
    one = make_optimizer(name, [serial], dict(lr=0.01))
    for _ in range(threads * steps):
        one.step([grad])
    errors = []

    def work():
        try:
            for _ in range(steps):
                opt.step([grad])
                opt.state[0]["step"]  # reads between the steps of other threads
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert not errors
    assert opt.state[0]["step"] == threads * steps
    assert shared.tobytes() == serial.tobytes()



# --- 4. fusedopt's thread count is its own, for every calling thread --------------------------------

def test_set_num_threads_reaches_every_thread(restore_runtime):
    fusedopt.set_num_threads(3)
    seen = []
    t = threading.Thread(target=lambda: seen.append((fusedopt.get_num_threads(), _core._team_size())))
    t.start()
    t.join()
    assert seen == [(3, 3)] and _core._team_size() == 3 and fusedopt.cpu_info()["num_threads"] == 3
    fusedopt.set_num_threads(1)
    t = threading.Thread(target=lambda: seen.append((fusedopt.get_num_threads(), _core._team_size())))
    t.start()
    t.join()
    assert seen[1] == (1, 1)


FORKED_CHILD = """
    import os
    import numpy as np
    import fusedopt
    from fusedopt import _core
    _core.set_serial_threshold(0)

    def steps(threads):
        fusedopt.set_num_threads(threads)
        p = np.linspace(-1, 1, 100_003, dtype=np.float32)
        opt = fusedopt.Adam([p], lr=0.1)
        for k in range(3):
            opt.step([np.full_like(p, 0.5 - k)])
        return p.tobytes()

    serial = steps(1)
    assert steps(2) == serial                  # the parent's workers exist now
    pid = os.fork()
    if pid == 0:                               # only the forking thread lives on in the child
        os._exit(0 if steps(2) == serial and steps(3) == serial else 3)
    _, status = os.waitpid(pid, 0)
    print("child", os.waitstatus_to_exitcode(status))
"""


def test_a_forked_child_steps_with_threads_and_gets_the_same_bits():
    """The kernels' workers do not survive fork(): the child starts its own and gets the same bits."""
    run = run_python(FORKED_CHILD)
    assert run.returncode == 0 and run.stdout.strip() == "child 0", run.stdout + run.stderr[-3000:]


@pytest.mark.parametrize("args,error", [((-1, True, 1), ValueError), ((1000, True, 0), ValueError),
                                        ((1.5, True, 1), TypeError), ((2**41, False, 1), ValueError)])
def test_the_worker_wait_hook_range_checks_and_steps_stay_right(args, error):
    _core._set_worker_wait(1_000_000, True, 2**30)  # the default
    with pytest.raises(error, match="expected an int"):
        _core._set_worker_wait(*args)
    grad = np.ones(100_003, np.float32)
    p, q = np.zeros_like(grad), np.zeros_like(grad)
    fusedopt.SGD([p], lr=0.5).step([grad])
    q -= np.float32(0.5) * grad
    assert p.tobytes() == q.tobytes()


OPENMP_ISOLATION = """
    import ctypes, fusedopt
    from fusedopt import _core
    omp = ctypes.CDLL("{library}")
    fusedopt.set_num_threads(3)
    omp.omp_set_num_threads(2)                 # another library's setting, through the shared runtime
    assert fusedopt.get_num_threads() == 3 and _core._team_size() == 3, (fusedopt.get_num_threads(), _core._team_size())
    fusedopt.set_num_threads(1)
    assert omp.omp_get_max_threads() == 2, omp.omp_get_max_threads()
    print("ok")
"""


def test_set_num_threads_leaves_the_openmp_runtime_setting_alone():
    """The OpenMP runtime the extension loaded (libgomp here) is the one other libraries share."""
    with open("/proc/self/maps") as maps:
        library = next((line.split()[-1] for line in maps if "libgomp" in line), None)
    library = library or ctypes.util.find_library("gomp")
    assert library, "no OpenMP runtime found"
    run = run_python(OPENMP_ISOLATION.format(library=library))
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stdout + run.stderr[-3000:]


TORCH_ISOLATION = """
    import torch, fusedopt
    from fusedopt import _core
    torch.set_num_threads(2)
    fusedopt.set_num_threads(3)
    assert torch.get_num_threads() == 2, torch.get_num_threads()
    torch.set_num_threads(1)
    assert fusedopt.get_num_threads() == 3 and _core._team_size() == 3
    print("ok")
"""


def test_torch_and_fusedopt_thread_counts_are_independent():
    pytest.importorskip("torch")
    run = run_python(TORCH_ISOLATION)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stdout + run.stderr[-3000:]


@pytest.mark.parametrize("n,error", [(0, ValueError), (-1, ValueError), (2**40, ValueError), (2**63, ValueError),
                                     (True, TypeError), (1.5, TypeError), ("2", TypeError)])
def test_a_bad_thread_count_is_refused_in_the_projects_words(n, error, restore_runtime):
    before = fusedopt.get_num_threads()
    with pytest.raises(error, match=r"^n: expected an int in \[1, 4096\], got "):
        fusedopt.set_num_threads(n)
    assert fusedopt.get_num_threads() == before


# --- 5. the fills check alignment and dtype -------------------------------------------------------

def misaligned_float64(n=8):
    buf = np.zeros(8 * n + 8, np.uint8)
    return buf, buf[4:4 + 8 * n].view(np.float64)


def test_a_misaligned_array_is_refused_by_every_fill_and_unchanged():
    buf, target = misaligned_float64()
    assert not target.flags.aligned
    for fill in (lambda t: fusedopt.init.uniform_(t, seed=0), lambda t: fusedopt.init.normal_(t, seed=0),
                 lambda t: fusedopt.init.trunc_normal_(t, seed=0), lambda t: fusedopt.init.kaiming_uniform_(
                     t.reshape(2, 4), seed=0), lambda t: fusedopt.init.constant_(t, 0.5)):
        with pytest.raises(ValueError, match="tensor: array is not aligned"):
            fill(target)
        assert not buf.any()
    with pytest.raises(ValueError, match="tensor: array is not aligned"):
        _core.init_fill(target, out_kind=1, distribution=0, a=0, b=1, mean=0, std=1, y_lo=0, y_hi=1,
                        upper_below=1, seed=0, stream=0)
    assert not buf.any()


@pytest.mark.parametrize("dtype,out_kind", [(np.int64, 1), (np.float32, 1), (np.float64, 0), (np.int32, 0),
                                            (np.int16, 2), (np.dtype(">f8"), 1)])
def test_the_internal_fill_refuses_an_array_of_another_dtype(dtype, out_kind):
    target = np.zeros(16, dtype)
    with pytest.raises(TypeError, match="tensor: dtype"):
        _core.init_fill(target, out_kind=out_kind, distribution=0, a=0, b=1, mean=0, std=1, y_lo=0, y_hi=1,
                        upper_below=1, seed=0, stream=0)
    assert not target.any()


@pytest.mark.parametrize("argument,value,error", [("out_kind", 4, ValueError), ("out_kind", -1, ValueError),
                                                  ("distribution", 2**63, ValueError), ("distribution", 1.0, TypeError)])
def test_the_internal_fill_range_checks_its_integers(argument, value, error):
    target = np.zeros(16)
    kwargs = dict(out_kind=1, distribution=0, a=0, b=1, mean=0, std=1, y_lo=0, y_hi=1, upper_below=1, seed=0, stream=0)
    with pytest.raises(error, match=f"^{argument}: expected an int in"):
        _core.init_fill(target, **{**kwargs, argument: value})
    assert not target.any()


# --- 6. integer arguments -------------------------------------------------------------------------

@pytest.mark.parametrize("step", [2**31, 2**63, 2**64 + 1, 10**30])
def test_huge_step_counts_give_the_reference_answer(step):
    rng = np.random.default_rng(5)
    p, g = rng.standard_normal(33), rng.standard_normal(33)
    m, v = rng.standard_normal(33), rng.random(33)
    state = {"step": step - 1, "exp_avg": m.copy(), "exp_avg_sq": v.copy()}
    expected = p.copy()
    reference.adam(expected, g, state, lr=0.01)
    F.adam([p], [g], [m], [v], step=step, lr=0.01)
    np.testing.assert_allclose(p, expected, rtol=1e-12)
    np.testing.assert_allclose(m, state["exp_avg"], rtol=1e-12)


@pytest.mark.parametrize("step,error", [(0, ValueError), (-1, ValueError), (-(2**63), ValueError), (1.0, TypeError),
                                        (True, TypeError), ("1", TypeError), (None, TypeError)])
def test_a_bad_step_is_refused_with_the_projects_message(step, error):
    p, g, m, v = (x[0] for x in adam_lists(10))
    before = [a.copy() for a in (p, g, m, v)]
    with pytest.raises(error, match="^step: "):
        F.adam([p], [g], [m], [v], step=step)
    assert_bytes_unchanged((p, g, m, v), before)


@pytest.mark.parametrize("seed", [-1, 2**64, 1.5, True])
def test_a_bad_seed_is_refused(seed):
    target = np.zeros(8)
    with pytest.raises((TypeError, ValueError), match="seed"):
        fusedopt.init.uniform_(target, seed=seed)
    assert not target.any()


def test_the_serial_threshold_is_range_checked(restore_runtime):
    for n, error in [(-1, ValueError), (2**63, ValueError), (0.5, TypeError)]:
        with pytest.raises(error, match=r"^n: expected an int in \[0, "):
            _core.set_serial_threshold(n)


# --- 7. load_state_dict checks everything before changing anything ----------------------------------

def trained(name="Adam", **kwargs):
    rng = np.random.default_rng(6)
    params = [rng.standard_normal((4, 3)), rng.standard_normal(5)]
    opt = make_optimizer(name, params, dict(lr=0.1, **kwargs))
    for _ in range(2):
        opt.step([rng.standard_normal(p.shape) for p in params])
    return opt


def assert_same_state_dict(a, b):
    assert a["param_groups"] == b["param_groups"]
    assert a["state"].keys() == b["state"].keys()
    for i in a["state"]:
        assert a["state"][i].keys() == b["state"][i].keys()
        for k, v in a["state"][i].items():
            assert np.asarray(v).tobytes() == np.asarray(b["state"][i][k]).tobytes()


def _set(path, value):
    def mutate(sd):
        target = sd
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return mutate


def _delete(path):
    def mutate(sd):
        target = sd
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]
    return mutate


# (id, mutation of a good state dict, exception, words the message must contain)
LOAD_CASES = [
    ("torch-only group key", _set(("param_groups", 0, "foreach"), None), ValueError, ["param_groups'][0]['foreach'", "not a hyperparameter"]),
    ("another optimizer's key", _set(("param_groups", 0, "momentum"), 0.9), ValueError, ["'momentum'"]),
    ("missing hyperparameter", _delete(("param_groups", 0, "betas")), ValueError, ["param_groups'][0]", "'betas'"]),
    ("bad hyperparameter value", _set(("param_groups", 0, "lr"), -1.0), ValueError, ["param_groups'][0]", "lr"]),
    ("bad hyperparameter type", _set(("param_groups", 0, "amsgrad"), "yes"), TypeError, ["param_groups'][0]", "amsgrad"]),
    ("params not ints", _set(("param_groups", 0, "params"), ["a", "b"]), TypeError, ["['params']"]),
    ("param index twice", _set(("param_groups", 0, "params"), [0, 0]), ValueError, ["param index 0"]),
    ("unknown state key", _set(("state", 0, "momentum_buffer"), np.zeros((4, 3))), ValueError, ["['state'][0]['momentum_buffer']"]),
    ("state not a dict", _set(("state", 0), [1, 2]), TypeError, ["['state'][0]"]),
    ("step missing", _delete(("state", 1, "step")), ValueError, ["['state'][1]", "'step'"]),
    ("step a float", _set(("state", 1, "step"), 2.0), TypeError, ["['state'][1]['step']", "float"]),
    ("step a bool", _set(("state", 1, "step"), True), TypeError, ["['state'][1]['step']", "bool"]),
    ("step negative", _set(("state", 1, "step"), -3), ValueError, ["['state'][1]['step']", "-3"]),
    ("buffer a list", _set(("state", 1, "exp_avg"), [0.0] * 5), TypeError, ["['state'][1]['exp_avg']", "list"]),
    ("buffer wrong shape", _set(("state", 0, "exp_avg"), np.zeros(12)), ValueError, ["['state'][0]['exp_avg']", "(12,)", "(4, 3)"]),
    ("buffer int dtype", _set(("state", 1, "exp_avg_sq"), np.zeros(5, np.int64)), TypeError, ["['state'][1]['exp_avg_sq']", "int64"]),
    ("buffer complex", _set(("state", 1, "exp_avg_sq"), np.zeros(5, np.complex128)), TypeError, ["exp_avg_sq", "complex128"]),
    ("state for no param", _set(("state", 7), {"step": 1}), ValueError, ["['state'][7]", "no group"]),
    ("unknown top-level key", _set(("extra",), 1), ValueError, ["'extra'"]),
    ("no state", _delete(("state",)), ValueError, ["'state'"]),
    ("groups not a list", _set(("param_groups",), {}), TypeError, ["param_groups", "dict"]),
]


@pytest.mark.parametrize("mutate,error,words", [c[1:] for c in LOAD_CASES], ids=[c[0] for c in LOAD_CASES])
def test_a_bad_state_dict_is_refused_at_load_naming_the_entry_and_changes_nothing(mutate, error, words):
    opt = trained()
    before = opt.state_dict()
    params_before = [p.copy() for p in opt._params]
    bad = opt.state_dict()
    mutate(bad)
    with pytest.raises(error) as info:
        opt.load_state_dict(bad)
    for w in words:
        assert w in str(info.value), (w, str(info.value))
    assert_same_state_dict(opt.state_dict(), before)
    assert_bytes_unchanged(opt._params, params_before)
    opt.step([np.ones((4, 3)), np.ones(5)])  # and it still steps


def test_a_state_dict_of_another_optimizer_is_refused_naming_its_key():
    opt = trained("Adam")
    before = opt.state_dict()
    for other in (trained("SGD", momentum=0.9), trained("RMSprop"), trained("Adagrad")):
        with pytest.raises(ValueError, match=r"state_dict\['param_groups'\]\[0\]\['\w+'\]: not a hyperparameter"):
            opt.load_state_dict(other.state_dict())
        assert_same_state_dict(opt.state_dict(), before)


def test_a_state_dict_saved_by_torch_optim_is_refused_at_load():
    torch = pytest.importorskip("torch")
    tp = [torch.zeros((4, 3), dtype=torch.float64, requires_grad=True), torch.zeros(5, dtype=torch.float64, requires_grad=True)]
    topt = torch.optim.Adam(tp, lr=0.1)
    for t in tp:
        t.grad = torch.ones_like(t)
    topt.step()
    opt = trained("Adam")
    before = opt.state_dict()
    with pytest.raises(ValueError, match=r"param_groups'\]\[0\]\['\w+'\]: not a hyperparameter of fusedopt.Adam"):
        opt.load_state_dict(topt.state_dict())
    assert_same_state_dict(opt.state_dict(), before)
    # only torch's groups' extra keys removed: the state's tensors are refused next
    sd = topt.state_dict()
    sd["param_groups"] = [{k: v for k, v in g.items() if k in before["param_groups"][0]} for g in sd["param_groups"]]
    with pytest.raises(TypeError, match=r"\['state'\]\[0\]\['step'\]: expected an int .*Tensor"):
        opt.load_state_dict(sd)
    assert_same_state_dict(opt.state_dict(), before)


def test_a_good_state_dict_with_numpy_integers_and_other_float_dtypes_loads_and_continues_right():
    opt = trained("Adam")
    sd = opt.state_dict()
    sd["state"][0]["step"] = np.int64(sd["state"][0]["step"])
    sd["state"][1]["exp_avg"] = sd["state"][1]["exp_avg"].astype(np.float32)
    fresh = make_optimizer("Adam", [p.copy() for p in opt._params], dict(lr=0.1))
    fresh.load_state_dict(sd)
    assert type(fresh.state[0]["step"]) is int and fresh.state[1]["exp_avg"].dtype == np.float64
    state = [{k: (np.array(v, np.float64) if k != "step" else int(v)) for k, v in sd["state"][i].items()} for i in range(2)]
    expected = [p.copy() for p in opt._params]
    grads = [np.full((4, 3), 0.5), np.full(5, -0.5)]
    fresh.step(grads)
    for i, (p, g) in enumerate(zip(expected, grads)):
        reference.adam(p, g, state[i], lr=0.1)
        np.testing.assert_allclose(fresh._params[i], p, rtol=1e-12)


# --- 8. a term whose coefficient is zero is left out, as torch leaves it out ------------------------

def nonfinite_run(name, kwargs, step_with):
    """Four steps whose gradients hold inf, -inf and NaN at moving places; returns the params."""
    rng = np.random.default_rng(7)
    p0 = rng.standard_normal(16)
    grads = [rng.standard_normal(16) for _ in range(4)]
    for k, g in enumerate(grads):
        g[k], g[k + 4], g[k + 8] = np.inf, -np.inf, np.nan
    return step_with(name, kwargs, p0, grads)


def fusedopt_steps(name, kwargs, p0, grads):
    p = p0.copy()
    opt = make_optimizer(name, [p], kwargs)
    for g in grads:
        opt.step([g.copy()])
    return p


def reference_steps(name, kwargs, p0, grads):
    p, state = p0.copy(), {}
    with np.errstate(all="ignore"):  # inf - inf and inf / inf are the point here
        for g in grads:
            REFERENCE[name](p, g.copy(), state, **kwargs)
    return p


def torch_steps(name, kwargs, p0, grads):
    import torch
    # NAdam keeps mu_product in torch's default dtype (float32): in float64, the product fusedopt
    # computes from the step count is torch's only with a float64 default.
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        p = torch.tensor(p0.copy(), requires_grad=True)
        opt = getattr(torch.optim, name)([p], **kwargs)
        for g in grads:
            p.grad = torch.tensor(g.copy())
            opt.step()
    finally:
        torch.set_default_dtype(default)
    return p.detach().numpy()


def assert_same_nonfinite(actual, expected):
    assert np.array_equal(np.isnan(actual), np.isnan(expected)), (actual, expected)
    finite_or_inf = ~np.isnan(expected)
    np.testing.assert_allclose(actual[finite_or_inf], expected[finite_or_inf], rtol=1e-12)


_HYPERS = {spec.class_name: spec.hyper_names for spec in fusedopt.functional.SPECS}
NO_DECAY = [(name, {**kwargs, "weight_decay": 0.0} if "weight_decay" in _HYPERS[name] else kwargs)
            for name, kwargs in CASES]
TORCH_NO_DECAY = [(name, kwargs) for name, kwargs in NO_DECAY
                  if name not in ("Lion", "LAMB", "LARS")]  # torch.optim has none of these


@pytest.mark.parametrize("case", NO_DECAY, ids=[case_id(c) for c in NO_DECAY])
def test_infinite_gradients_without_weight_decay_match_the_reference(case):
    name, kwargs = case
    assert_same_nonfinite(nonfinite_run(name, kwargs, fusedopt_steps), nonfinite_run(name, kwargs, reference_steps))


@pytest.mark.parametrize("case", TORCH_NO_DECAY, ids=[case_id(c) for c in TORCH_NO_DECAY])
def test_infinite_gradients_without_weight_decay_match_torch(case):
    pytest.importorskip("torch")
    name, kwargs = case
    assert_same_nonfinite(nonfinite_run(name, kwargs, fusedopt_steps), nonfinite_run(name, kwargs, torch_steps))


def test_sgd_momentum_with_an_infinite_gradient_keeps_minus_inf_as_torch_does():
    """The finding: 0·p was added when weight_decay is 0, and 0·(-inf) is NaN."""
    p = np.zeros(4)
    opt = fusedopt.SGD([p], lr=0.1, momentum=0.9)
    opt.step([np.array([np.inf, 1.0, 1.0, 1.0])])
    opt.step([np.ones(4)])
    assert p[0] == -np.inf and np.isfinite(p[1:]).all()


@pytest.mark.parametrize("call,words", [
    (lambda: _core.philox4x32_10((1, 2, 3, 2**32), (0, 0)), r"^counter: expected an int in \[0, 4294967295\]"),
    (lambda: _core.philox4x32_10((1, 2, 3, 4), (-1, 0)), r"^key: expected an int in"),
    (lambda: _core.philox4x32_10((1, 2, 3), (0, 0)), r"^counter: expected 4 words"),
    (lambda: _core.step(2**63, 0, ("params", "grads"), [[np.zeros(2)], [np.zeros(2)]], b""), r"^rule: expected an int"),
    (lambda: _core.step(0, -1, ("params", "grads"), [[np.zeros(2)], [np.zeros(2)]], b""), r"^variant: expected an int"),
    (lambda: _core.Plan([], 2**70), r"^n_params: expected an int"),
])
def test_the_compiled_entry_points_range_check_their_integers(call, words):
    with pytest.raises(ValueError, match=words):
        call()


def test_remembered_checks_never_let_an_overlap_through():
    """The checks remember the last memory layouts found clear (the plan's grads, the functional's
    lists): a new layout is checked again, whatever came before."""
    p = np.random.default_rng(8).standard_normal(64)
    opt = fusedopt.SGD([p], lr=0.1, momentum=0.9)
    g1, g2 = np.ones(64), np.full(64, 2.0)
    for g in (g1, g2, g1, g2):  # two layouts, both remembered
        opt.step([g])
    buffer = opt.state[0]["momentum_buffer"]
    before = p.copy(), buffer.copy()
    with pytest.raises(ValueError, match=r"grads\[0\]: shares memory with state\[0\]\['momentum_buffer'\]"):
        opt.step([buffer])
    assert p.tobytes() == before[0].tobytes() and buffer.tobytes() == before[1].tobytes()
    opt.step([g1])  # the remembered layouts still pass

    params, m, v = [np.zeros(64)], np.zeros(64), np.zeros(64)
    F.adam(params, [g1], [m], [v], step=1)
    F.adam(params, [g2], [m], [v], step=2)
    with pytest.raises(ValueError, match=r"grads\[0\]: shares memory with exp_avgs\[0\]"):
        F.adam(params, [m], [m], [v], step=3)  # same written arrays, a new grad
    with pytest.raises(ValueError, match=r"exp_avg_sqs\[0\]: shares memory with exp_avgs\[0\]"):
        F.adam(params, [g1], [m], [m], step=3)  # new written arrays, a remembered grad
