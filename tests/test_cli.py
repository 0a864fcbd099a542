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
        assert row["ms_min"] <= row["ms_q1"] <= row["ms"] <= row["ms_q3"] <= row["ms_p90"] <= row["ms_max"]
        assert row["in_cache"] is True and row["frac_ceiling"] is None  # 1000 elements: in any cache
    import fusedopt
    assert data["machine"]["fusedopt_version"] == fusedopt.__version__ and data["threads"] == [1]
    assert data["machine"]["isa"] == fusedopt.cpu_info()["isa"] and "numpy" in data["machine"]["libraries"]
    assert {"loadavg_1min", "busy_fraction"} <= set(data["load_before"]) and "load_after" in data
    assert data["busy_processes"] == 0 and isinstance(data["warnings"], list)
    assert " ok" in r.stdout  # the reference check is a column
    assert "fusedopt bench: [1/3] adam 1000 float32 1T" in r.stderr  # progress without a terminal


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
    (["bench", "--optimizers", "", "--initializers", "none"], "nothing to run"),
    (["bench", "--optimizers", "", "--sizes", "model5"], "nothing to run"),
    (["bench", "--json", "/nonexistent-folder/b.json"], "does not exist"),
    (["bench", "--plot", "/nonexistent-folder/b.png"], "does not exist"),
    (["bench", "--json", "/tmp"], "is a directory"),
    (["bench", "--load", "-1"], "--load"),
    (["bench", "--load", "100000"], "--load"),
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


# --- the benchmark's honesty: spread, flags, cache, load ---------------------------------------------

def test_a_steady_timing_is_not_flagged_and_an_outlier_heavy_one_is():
    from fusedopt.bench import harness

    steady = harness.Timing([1.00, 1.01, 0.99, 1.02, 1.00, 0.98, 1.01, 1.00, 1.03, 0.99] * 2)
    wide = harness.Timing([1.0, 1.0, 1.0, 1.6, 1.7, 1.0, 1.0, 1.8, 1.0, 1.9])       # the middle half spans 70 %
    tail = harness.Timing([1.0] * 16 + [12.0, 12.0, 12.0, 12.0])                    # 1 in 5 waits a time slice
    assert float(steady) == 1.0 and not harness.unstable(steady)
    assert harness.unstable(wide) and harness.unstable(tail)
    assert not harness.unstable(1.0) and not harness.unstable(harness.Timing([1.0, 9.0]))  # too few to judge
    s = tail.spread()
    assert s["ms_min"] == 1000.0 and s["ms_max"] == 12000.0 and s["ms_p90"] > 1.5 * 1000.0


def test_rows_carry_the_spread_and_the_table_and_warnings_flag_the_wide_ones(monkeypatch):
    from fusedopt.bench import harness, report, tables

    times = {"steady": harness.Timing([1e-3] * 20), "noisy": harness.Timing([1e-3] * 14 + [9e-3] * 6),
             "probe": harness.Timing([5e-4] * 20)}
    built = {"steady": None, "noisy": None}
    common = dict(kind="optimizer", name="adam", size="1e7", n=10_000_000, dtype="float32", threads=2)
    monkeypatch.setattr(harness, "last_level_cache_bytes", lambda: 32 << 20)
    out_of_cache = tables.rows_from_times(times, built, {"steady": True, "noisy": False}, 1e11, 2.8e8, common,
                                          footprint_bytes=160_000_000, probe=times["probe"])
    steady, noisy = out_of_cache
    assert not steady["unstable"] and noisy["unstable"] and not steady["probe_unstable"]
    assert steady["frac_ceiling"] == pytest.approx(2.8e8 / 1e-3 / 1e11) and not steady["in_cache"]
    lines = report.table(out_of_cache).splitlines()
    assert "!" not in lines[1] and "!" in lines[2]
    assert lines[1].endswith(" ok") and lines[2].endswith("MISMATCH vs reference") and "280.0%" in lines[1]
    notes = report.warnings(out_of_cache)
    assert len(notes) == 1 and notes[0].startswith("1 of 2 rows had a wide spread")

    in_cache = tables.rows_from_times(times, built, {"steady": True, "noisy": True}, 1e11, 2.8e8, common,
                                      footprint_bytes=16 << 20, probe=harness.Timing([5e-4] * 14 + [5e-3] * 6))
    assert all(r["frac_ceiling"] is None and r["in_cache"] and r["probe_unstable"] for r in in_cache)
    assert all("in cache" in line for line in report.table(in_cache, header=False).splitlines())
    assert not any("probe" in n for n in report.warnings(in_cache))  # no ceiling shown, nothing to doubt


def test_a_busy_machine_is_warned_about_with_the_remedy():
    from fusedopt.bench import report

    quiet = {"loadavg_1min": 0.1, "busy_fraction": 0.01}
    busy = {"loadavg_1min": 1.9, "busy_fraction": 0.55}
    assert report.warnings([], quiet, quiet) == []
    (note,) = report.warnings([], busy, quiet)
    assert "before: 55% of the CPUs busy" in note and "--threads 1" in note and "--repeats" in note


def test_busy_processes_keep_a_cpu_busy_and_stop_with_the_block():
    from fusedopt.bench import harness

    before = set(_children())  # other tests may have left helpers running (multiprocessing's tracker)
    with harness.busy_processes(1):
        load = harness.machine_load(0.3)
        started = set(_children()) - before
        assert len(started) == 1
    assert load["busy_fraction"] > 0.2 / (__import__("os").cpu_count() or 1)
    assert not (started & set(_children()))


def _children():
    import os

    out = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == os.getpid():
                        out.append(int(pid))
            except (OSError, ValueError, IndexError):
                pass
    return out


def test_bench_with_load_says_so(tmp_path):
    out = tmp_path / "loaded.json"
    r = run_cli("bench", "--sizes", "1000", "--optimizers", "sgd", "--initializers", "none", "--backends", "fusedopt",
                "--repeats", "3", "--threads", "1", "--load", "1", "--json", str(out))
    assert r.returncode == 0, r.stderr
    data = json.loads(out.read_text())
    assert data["busy_processes"] == 1 and any("--load" in n for n in data["warnings"])
    assert "1 busy process(es) running (--load)" in r.stdout
