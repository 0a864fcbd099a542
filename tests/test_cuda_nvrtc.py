"""The shipped CUDA kernels compile under NVRTC exactly as the CUDA backend compiles them at first use
(same source text, same options), and define every kernel the backend launches. NVRTC needs no GPU,
so this runs wherever CuPy and an NVRTC library are installed (CI installs both); the kernels' results
are checked by test_cuda_kernels_on_host.py here and by the gpu-marked tests on a GPU."""

import re

import pytest

from fusedopt.backends import cuda

pytest.importorskip("cupy")
from cupy.cuda import nvrtc  # noqa: E402 - after the skip

try:
    NVRTC_VERSION = nvrtc.getVersion()
except Exception as e:  # noqa: BLE001 - CuPy without an NVRTC library (pip install nvidia-cuda-nvrtc)
    pytest.skip(f"no NVRTC library: {e}", allow_module_level=True)

# Hopper (the benchmarked H100) and Ampere: the two architectures the launch geometry is sized for.
ARCHS = ("90", "80")


def compile_(family: str, arch_option: str):
    prog = nvrtc.createProgram(cuda.kernel_source(family), f"{family}.cu", [], [])
    try:
        nvrtc.compileProgram(prog, list(cuda.compile_options()) + [arch_option, "--ptxas-options=-v"])
    except nvrtc.NVRTCError:
        pytest.fail(f"{family}.cu does not compile under NVRTC {NVRTC_VERSION}:\n{nvrtc.getProgramLog(prog)}")
    return prog


@pytest.mark.parametrize("family", cuda.FAMILIES)
def test_kernels_compile_under_nvrtc_and_define_every_launched_name(family):
    ptx = nvrtc.getPTX(compile_(family, "-arch=compute_90")).decode()
    entries = set(re.findall(r"\.entry\s+(\w+)", ptx))
    assert set(cuda.kernel_names(family)) <= entries, f"missing kernels: {set(cuda.kernel_names(family)) - entries}"


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("family", cuda.FAMILIES)
def test_kernels_assemble_without_register_spills(family, arch):
    """A spill would put per-element traffic into local memory, in kernels meant to move each byte once."""
    log = nvrtc.getProgramLog(compile_(family, f"-arch=sm_{arch}"))
    spills = re.findall(r"(\d+) bytes spill stores, (\d+) bytes spill loads", log)
    assert spills, log
    assert all(s == ("0", "0") for s in spills), log
