"""The fusedopt command: runs, lists each available backend, writes parseable JSON, flags a wrong
implementation, and refuses bad options with exit status 2 and no traceback."""

import json
import subprocess
import sys

import numpy as np
import pytest

from fusedopt.bench import impls, suite


def run_cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "fusedopt", *args], capture_output=True, text=True, timeout=timeout)


def test_bench_tiny_run_lists_backends_and_writes_json(tmp_path):
    out = tmp_path / "bench.json"
    r = run_cli("bench", "--sizes", "1000", "--optimizers", "adam,sgd", "--initializers", "normal",
                "--repeats", "2", "--threads", "1", "--json", str(out))
    assert r.returncode == 0, r.stderr
    for backend in suite.available_backends():
        assert backend in r.stdout
    assert "MISMATCH" not in r.stdout
    data = json.loads(out.read_text())
    assert {"cpu", "fusedopt_cpu", "numpy", "python"} <= set(data["machine"])
    assert data["machine"]["fusedopt_cpu"]["isa"] in data["machine"]["fusedopt_cpu"]["available_isas"]
    names = {(row["name"], row["backend"]) for row in data["rows"]}
    assert ("adam", "fusedopt") in names and ("sgd", "numpy") in names and ("normal", "fusedopt") in names
    for row in data["rows"]:
        assert {"ms", "gitems", "gbs", "frac_ceiling", "agrees_with_reference", "threads", "dtype"} <= set(row)
        assert row["ms"] > 0 and row["agrees_with_reference"] is True


def test_precheck_flags_a_wrong_implementation():
    def off_by_a_bit(optimizer, kwargs, params, grads):
        impl = impls.fusedopt_impl(optimizer, kwargs, params, grads)
        step = impl.step

        def wrong():
            step()
            impl.params[0][0] += 0.01  # a deliberately wrong update
        return impls.Impl(wrong, impl.params)

    rows = suite.optimizer_case("adam", "1000", np.float32, 1, ["fusedopt"], 2, extra={"wrong": off_by_a_bit})
    verdict = {r["backend"]: r["agrees_with_reference"] for r in rows}
    assert verdict == {"fusedopt": True, "wrong": False}


def test_info_prints_isa():
    r = run_cli("info")
    assert r.returncode == 0
    assert "isa: " in r.stdout and "fusedopt " in r.stdout


@pytest.mark.parametrize("args,words", [
    (["bench", "--optimizers", "adamx"], "unknown optimizer"),
    (["bench", "--backends", "tpu"], "unknown backend"),
    (["bench", "--backends", "cuda"], "not available"),
    (["bench", "--sizes", "0"], "invalid size"),
    (["bench", "--sizes", "lots"], "invalid size"),
    (["bench", "--dtypes", "int8"], "float32"),
    (["bench", "--threads", "0"], "threads"),
    (["frobnicate"], "invalid choice"),
])
def test_bad_options_exit_2_without_traceback(args, words):
    r = run_cli(*args)
    assert r.returncode == 2
    assert words in r.stderr and "Traceback" not in r.stderr


def test_plot_without_matplotlib_exits_2(tmp_path):
    code = ("import sys; sys.modules['matplotlib'] = None; from fusedopt.cli import main; "
            f"sys.exit(main(['bench', '--plot', r'{tmp_path / 'p.png'}']))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "matplotlib" in r.stderr and "Traceback" not in r.stderr
