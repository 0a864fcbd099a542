import pytest

import fusedopt
from fusedopt import _core


# The suite runs on fusedopt's pool, whichever test imports fusedopt.torch first (which would choose
# torch's OpenMP team): the fusedopt.torch tests choose the team themselves (their module fixtures), and
# test_thread_runtime.py checks that both give the same bits.
fusedopt.set_thread_runtime("fusedopt")


@pytest.fixture
def restore_runtime():
    """Puts threads, thread runtime, ISA and serial threshold back as they were after a test that
    changes them."""
    info = _core.cpu_info()
    openmp = _core._thread_runtime_is_openmp()
    yield
    _core._set_thread_runtime(openmp)
    fusedopt.set_num_threads(info["num_threads"])
    _core.set_isa(info["isa"])
    _core.set_serial_threshold(info["serial_threshold"])


def pytest_terminal_summary(terminalreporter):
    """pytest-rerunfailures keeps quiet about why a test failed before its rerun passed; say it, so
    a CI log shows what the development VM's faulty CPU did (benchmarks/RESULTS.md, "Open problem")."""
    reruns = terminalreporter.stats.get("rerun", [])
    if not reruns:
        return
    terminalreporter.section("why tests were re-run")
    for report in reruns:
        lines = report.longreprtext.strip().splitlines()
        terminalreporter.write_line(f"{report.nodeid} ({report.when}):")
        for line in [line for line in lines if line.startswith("E ")][:12] or lines[-3:]:
            terminalreporter.write_line(f"    {line}")

