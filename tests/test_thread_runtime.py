"""fusedopt.set_thread_runtime: steps on the OpenMP runtime's team (the one torch's CPU ops run on)
instead of fusedopt's pool give the same bits, run on that team, fall back to the pool in a child of
fork(), and ``import fusedopt.torch`` chooses the team unless the user chose."""

from __future__ import annotations

import re

import numpy as np
import pytest

import fusedopt
from fusedopt import _core, reference
from test_safety import run_python


@pytest.mark.parametrize("name", ["pool", "OpenMP", "", None, 1])
def test_an_unknown_runtime_is_refused_and_nothing_changes(name, restore_runtime):
    before = fusedopt.get_thread_runtime()
    with pytest.raises(ValueError, match=r"^set_thread_runtime: expected one of \('fusedopt', 'openmp'\)"):
        fusedopt.set_thread_runtime(name)
    assert fusedopt.get_thread_runtime() == before


def steps(make, n_steps=3, size=100_003, dtype=np.float32, tensors=3):
    """The params' bytes after n_steps of make(params) with grads that change each step."""
    rng = np.random.default_rng(5)
    params = [rng.standard_normal(size + k).astype(dtype) for k in range(tensors)]
    opt = make(params)
    for k in range(n_steps):
        opt.step([np.full_like(p, 0.3 - 0.2 * k) + p * np.asarray(0.1, dtype) for p in params])
    return b"".join(p.tobytes() for p in params)


OPTIMIZERS = {
    "adam": lambda ps: fusedopt.Adam(ps, lr=0.01, weight_decay=0.1),
    "adamw amsgrad": lambda ps: fusedopt.AdamW(ps, lr=0.01, amsgrad=True),
    "sgd nesterov": lambda ps: fusedopt.SGD(ps, lr=0.1, momentum=0.9, nesterov=True),
    "adagrad": lambda ps: fusedopt.Adagrad(ps, lr=0.1),
    "lamb (per-tensor norms)": lambda ps: fusedopt.LAMB(ps, lr=0.01),
}


@pytest.mark.parametrize("threads", [2, 3])
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_steps_on_the_openmp_team_give_the_pools_bits_and_run_there(name, threads, restore_runtime):
    _core.set_serial_threshold(0)
    fusedopt.set_num_threads(threads)
    fusedopt.set_thread_runtime("fusedopt")
    on_pool = steps(OPTIMIZERS[name])
    before = _core._pool_stats()
    fusedopt.set_thread_runtime("openmp")
    assert fusedopt.get_thread_runtime() == "openmp" and fusedopt.cpu_info()["thread_runtime"] == "openmp"
    on_team = steps(OPTIMIZERS[name])
    after = _core._pool_stats()
    assert on_team == on_pool
    assert after["openmp_jobs"] > before["openmp_jobs"] and after["jobs"] == before["jobs"]


def test_adam_on_the_openmp_team_follows_the_reference(restore_runtime):
    _core.set_serial_threshold(0)
    fusedopt.set_num_threads(2)
    fusedopt.set_thread_runtime("openmp")
    rng = np.random.default_rng(2)
    p = rng.standard_normal(200_001)
    expected, state = p.copy(), {}
    opt = fusedopt.Adam([p], lr=0.01)
    for _ in range(3):
        g = rng.standard_normal(p.size)
        opt.step([g])
        reference.adam(expected, g, state, lr=0.01)
    np.testing.assert_allclose(p, expected, rtol=1e-12, atol=1e-14)


FORKED_CHILD_ON_THE_TEAM = """
    import os
    import numpy as np
    import fusedopt
    from fusedopt import _core
    _core.set_serial_threshold(0)
    fusedopt.set_num_threads(2)

    def steps():
        p = np.linspace(-1, 1, 100_003, dtype=np.float32)
        opt = fusedopt.Adam([p], lr=0.1)
        for k in range(3):
            opt.step([np.full_like(p, 0.5 - k)])
        return p.tobytes()

    on_pool = steps()
    fusedopt.set_thread_runtime("openmp")
    assert steps() == on_pool                  # the parent's OpenMP team exists now
    pid = os.fork()
    if pid == 0:                               # libgomp's team is unusable here: the pool runs
        before = _core._pool_stats()
        same = steps() == on_pool
        after = _core._pool_stats()
        os._exit(0 if same and after["openmp_jobs"] == before["openmp_jobs"] and after["jobs"] > before["jobs"] else 3)
    _, status = os.waitpid(pid, 0)
    print("child", os.waitstatus_to_exitcode(status))
"""


def test_a_forked_child_of_a_process_on_the_openmp_team_steps_on_the_pool():
    run = run_python(FORKED_CHILD_ON_THE_TEAM)
    assert run.returncode == 0 and run.stdout.strip() == "child 0", run.stdout + run.stderr[-3000:]


IMPORT_TORCH_ADAPTER = """
    import re
    import fusedopt
    {before}
    import fusedopt.torch
    with open("/proc/self/maps") as f:
        runtimes = set(re.findall(r"\\S*/lib(?:gomp|iomp5|omp)[^/\\s]*\\.so[^/\\s]*", f.read()))
    print(fusedopt.get_thread_runtime(), len(runtimes))
"""


@pytest.mark.parametrize("before,env,chosen", [
    ("", {}, None),                                              # None: the team when torch shares it
    ("fusedopt.set_thread_runtime('fusedopt')", {}, "fusedopt"),
    ("", {"FUSEDOPT_THREAD_RUNTIME": "fusedopt"}, "fusedopt"),
    ("", {"FUSEDOPT_THREAD_RUNTIME": "openmp"}, "openmp"),
])
def test_importing_fusedopt_torch_chooses_the_openmp_team_unless_the_user_chose(before, env, chosen):
    pytest.importorskip("torch")
    run = run_python(IMPORT_TORCH_ADAPTER.format(before=before), **env)
    assert run.returncode == 0, run.stderr[-3000:]
    runtime, n_runtimes = run.stdout.split()
    import torch

    shared = "parallel backend: OpenMP" in torch.__config__.parallel_info() and n_runtimes == "1"
    assert runtime == (chosen or ("openmp" if shared else "fusedopt"))
    assert re.fullmatch(r"fusedopt|openmp", runtime)
