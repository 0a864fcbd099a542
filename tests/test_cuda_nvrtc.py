"""The shipped CUDA kernels compile under NVRTC exactly as the CUDA backend compiles them at first use
(same source text, same options), and define every kernel the backend launches. NVRTC needs no GPU,
so this runs wherever CuPy and an NVRTC library are installed (CI installs both); the kernels' results
are checked by the GPU test modules, on the host emulation of CuPy here (test_gpu_tests_on_host.py)
and on a GPU (pytest -m gpu)."""

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


def options(arch_option: str) -> list:
    """The backend's options as CuPy's RawModule passes them to NVRTC: with the folders of CuPy's own
    CCCL and of the CUDA headers (cooperative_groups.h, for adafactor.cu; CI installs them with
    nvidia-cuda-runtime) added, by CuPy's own function for that."""
    from cupy._core.core import assemble_cupy_compiler_options

    return list(assemble_cupy_compiler_options(cuda.compile_options())) + [arch_option, "--ptxas-options=-v"]


def compile_(source: str, arch_option: str):
    """NVRTC over the source with every kernel the backend launches from it (the template
    instantiations of optimizers.cu are added as name expressions, as CuPy's RawModule does)."""
    prog = nvrtc.createProgram(cuda.kernel_source(source), f"{source}.cu", [], [])
    expressions = [n for n in cuda.kernel_names(source) if "<" in n]
    for name in expressions:
        nvrtc.addNameExpression(prog, name)
    try:
        nvrtc.compileProgram(prog, options(arch_option))
    except nvrtc.NVRTCError:
        pytest.fail(f"{source}.cu does not compile under NVRTC {NVRTC_VERSION}:\n{nvrtc.getProgramLog(prog)}")
    return prog, {name: nvrtc.getLoweredName(prog, name) for name in expressions}


@pytest.mark.parametrize("source", cuda.SOURCES)
def test_kernels_compile_under_nvrtc_and_define_every_launched_name(source):
    prog, lowered = compile_(source, "-arch=compute_90")
    ptx = nvrtc.getPTX(prog).decode()
    entries = set(re.findall(r"\.entry\s+(\w+)", ptx))
    names = {lowered.get(name, name) for name in cuda.kernel_names(source)}
    assert names <= entries, f"missing kernels: {names - entries}"


def test_every_variant_of_every_rule_is_launched():
    """optimizers.cu is instantiated for each variant (flags) of each registered rule, in both types:
    one kernel per variant, and for a two-pass rule (LAMB, LARS) two where the variant sums norms."""
    from fusedopt import _core

    launched = {"step": 0, "first_pass": 0, "scaled_step": 0, "step_from_device": 0}
    for index, rule in enumerate(_core.rules()):
        for variant, norms in enumerate(rule["norms"]):
            kernels = cuda.kernels_of(index, variant)
            assert kernels == (("step",) if norms < 0 else ("first_pass", "scaled_step") if norms else ("scaled_step",))
            for kernel in kernels:
                launched[kernel] += 2
            if kernels == ("step",):  # and its capturable twin, scalars from device memory
                launched["step_from_device"] += 2
    assert launched["first_pass"] > 0 and launched["scaled_step"] > launched["first_pass"]  # LARS without norms
    assert launched["step_from_device"] == launched["step"]
    names = set(cuda.kernel_names("optimizers"))
    assert set(cuda.TRAFFIC_KERNELS) <= names  # the benchmark's Adam-traffic probe, compiled alike
    assert len(names) == sum(launched.values()) + len(cuda.TRAFFIC_KERNELS)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("source", cuda.SOURCES)
def test_kernels_assemble_without_register_spills_or_stack(source, arch):
    """A spill, or a per-thread array left in local memory (a stack frame: the slot arrays of the
    generic kernel indexed at run time), would put per-element traffic into local memory, in kernels
    meant to move each byte once."""
    log = nvrtc.getProgramLog(compile_(source, f"-arch=sm_{arch}")[0])
    frames = re.findall(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", log)
    assert len(frames) == len(cuda.kernel_names(source)), log
    assert all(f == ("0", "0", "0") for f in frames), log


def mixed_examples():
    """16-bit steps as the backend names them (compiled at first use, one per layout): every variant of
    every rule (the two-pass rules' first pass and update) with bfloat16 lists rounded stochastically,
    and float16 params and grads with float32 master copies and state."""
    from fusedopt import _core

    names = []
    for index, rule in enumerate(_core.rules()):
        for variant, present in enumerate(rule["present"]):
            lists = bin(present).count("1")
            bf16, fp16_master = [2] * lists, [3, 3] + [0] * (lists - 2)
            if not rule["per_tensor_norms"]:
                names.append(cuda.mixed_kernel_name(index, variant, bf16, False, True))
                names.append(cuda.mixed_kernel_name(index, variant, fp16_master, True, False))
                continue
            # a two-pass rule (LAMB, LARS): its first pass where the variant sums norms, then its update
            if "first_pass" in cuda.kernels_of(index, variant):
                names.append(cuda.mixed_first_pass_name(index, variant, bf16, False))
                names.append(cuda.mixed_first_pass_name(index, variant, fp16_master, True))
            names.append(cuda.mixed_scaled_step_name(index, variant, bf16, False, True))
            names.append(cuda.mixed_scaled_step_name(index, variant, fp16_master, True, False))
    return names


@pytest.mark.parametrize("arch", ARCHS)
def test_16_bit_kernels_compile_and_assemble_without_spills_or_stack(arch):
    names = mixed_examples()
    prog = nvrtc.createProgram(cuda.kernel_source("optimizers"), "optimizers.cu", [], [])
    for name in names:
        nvrtc.addNameExpression(prog, name)
    try:
        nvrtc.compileProgram(prog, options(f"-arch=sm_{arch}"))
    except nvrtc.NVRTCError:
        pytest.fail(f"optimizers.cu's 16-bit kernels do not compile under NVRTC:\n{nvrtc.getProgramLog(prog)}")
    log = nvrtc.getProgramLog(prog)
    frames = re.findall(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", log)
    assert len(frames) >= len(names), log
    assert all(f == ("0", "0", "0") for f in frames), log
