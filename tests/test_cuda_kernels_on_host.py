"""The CUDA sources, run on the host: fusedopt/cuda/*.cu compiled as C++ with the built-in index
variables emulated (tests/cuda/host_emulation.hpp), driven through the CUDA backend's own Python code
with NumPy arrays standing in for device memory. On machines without a GPU this checks the chunk walk
(grid stride, chunk tails, vector and scalar paths), the slot order, the flags and the fills, bit for
bit against the CPU kernels. What it cannot check (NVRTC, CuPy, streams, the hardware) is left to the
GPU tests (test_gpu_*.py)."""

import ctypes
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import fusedopt
from fusedopt import backends, init
from fusedopt.backends import cuda
from fusedopt.init import _fill
from cases import CASES, ReferenceRun, assert_same_state, case_id, make_optimizer, random_grads

HERE = Path(__file__).resolve().parent
REAL_CHECK_CURRENT_DEVICE = cuda._check_current_device  # before any fixture replaces it


@pytest.fixture(scope="session")
def host_kernels(tmp_path_factory):
    compiler = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")
    if compiler is None:
        pytest.skip("no C++ compiler to build the host emulation of the CUDA kernels")
    lib = tmp_path_factory.mktemp("host_kernels") / "host_kernels.so"
    sources = Path(fusedopt.__file__).parent / "cuda"  # the .cu files as installed
    subprocess.run([compiler, "-std=c++17", "-O2", "-ffp-contract=off", "-fno-strict-aliasing", "-fPIC", "-shared",
                    f"-I{fusedopt.get_include()}", f"-I{sources}", "-o", str(lib), str(HERE / "cuda" / "host_kernels.cpp")],
                   check=True)
    dll = ctypes.CDLL(str(lib))
    dll.launch_kernel.argtypes = [ctypes.c_char_p, ctypes.c_uint, ctypes.c_uint, ctypes.POINTER(ctypes.c_void_p)]
    dll.launch_kernel.restype = ctypes.c_int
    return dll


class HostKernel:
    """Called like a CuPy RawKernel: NumPy arrays pass as pointers, NumPy scalars by value."""

    def __init__(self, dll, name):
        self.dll, self.name = dll, name

    def __call__(self, grid, block, args):
        values = [np.array([a.ctypes.data], np.uint64) if isinstance(a, np.ndarray) else np.array(a) for a in args]
        assert all(isinstance(a, (np.ndarray, np.generic)) for a in args), [type(a) for a in args]
        pointers = (ctypes.c_void_p * len(values))(*[v.ctypes.data for v in values])
        assert self.dll.launch_kernel(self.name.encode(), grid[0], block[0], pointers) == 0, self.name


def _host_check_list(name, arrays):
    for i, a in enumerate(arrays):
        assert isinstance(a, np.ndarray) and a.flags.c_contiguous and a.dtype == arrays[0].dtype, f"{name}[{i}]"
    return cuda._ListInfo(arrays[0].dtype, 0, tuple(a.shape for a in arrays), tuple(a.ctypes.data for a in arrays))


@pytest.fixture(params=[("4096", 1000), ("12", 3)], ids=["chunk4096-grid1000", "chunk12-grid3"])
def host_device(request, host_kernels, monkeypatch):
    """Routes every call to the CUDA backend, whose kernels then run on the host. Two launch
    geometries: the default chunk with a grid that covers every chunk, and tiny chunks (tails in
    every chunk) with a grid of 3 blocks (each block strides over many chunks)."""
    chunk, grid = request.param
    monkeypatch.setenv("FUSEDOPT_CUDA_CHUNK", chunk)
    monkeypatch.setattr(backends, "backend_for", lambda params: cuda)
    monkeypatch.setattr(_fill, "fill_function", lambda target: cuda.init_fill)
    monkeypatch.setattr(cuda, "_check_list", _host_check_list)
    monkeypatch.setattr(cuda, "_to_device", lambda host: host)
    monkeypatch.setattr(cuda, "_kernel", lambda source, name: HostKernel(host_kernels, name))
    monkeypatch.setattr(cuda, "_max_blocks", lambda device: grid)
    monkeypatch.setattr(cuda, "_device_id", lambda array: 0)
    monkeypatch.setattr(cuda, "_check_current_device", lambda device: None)
    monkeypatch.setattr(cuda, "_tables", {})


def unaligned(values):
    """A C-contiguous copy that starts one element past a 16-byte boundary (no vector loads)."""
    buf = np.empty(values.size + 1, values.dtype)
    if buf.ctypes.data % 16:
        buf = np.empty(values.size + 2, values.dtype)[1:]
    out = buf[1:].reshape(values.shape)
    assert out.ctypes.data % 16 and out.flags.c_contiguous
    out[...] = values
    return out


SHAPES = [(0,), (1,), (7,), (1023,), (300, 129), (40_001,), (13,)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("case", CASES, ids=[case_id(c) for c in CASES])
def test_cuda_kernels_match_the_cpu_bits(case, dtype, host_device):
    name, kwargs = case
    rng = np.random.default_rng(0)
    params = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    params[-2] = unaligned(params[-2])
    cpu_params = [p.copy() for p in params]
    ref = ReferenceRun(name, params, kwargs)
    gpu_opt, cpu_opt = make_optimizer(name, params, kwargs), make_optimizer(name, cpu_params, kwargs)
    for _ in range(4):
        grads = random_grads(SHAPES, dtype, rng)
        gpu_opt.step(grads)
        with pytest.MonkeyPatch.context() as m:
            m.setattr(backends, "backend_for", lambda params: backends.cpu)
            cpu_opt.step(grads)
        ref.step(grads)
    from test_optimizers_vs_reference import assert_close

    for i, (g, c, r) in enumerate(zip(params, cpu_params, ref.params)):
        assert_close(g, r, dtype, f"params[{i}]")
        assert g.tobytes() == c.tobytes(), f"params[{i}]: the CUDA kernel's bits differ from the CPU's"
    assert_same_state(cpu_opt, gpu_opt)


FILLS = [
    ("uniform_", dict(a=-0.5, b=2.0)),
    ("normal_", dict(mean=1.0, std=0.5)),
    ("trunc_normal_", dict(mean=0.1, std=1.0, a=-1.0, b=1.5)),
    ("kaiming_normal_", dict()),
]


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "bfloat16"])
@pytest.mark.parametrize("fill,kwargs", FILLS, ids=[f[0] for f in FILLS])
def test_cuda_fills_match_the_cpu_bits(fill, kwargs, dtype, host_device):
    for shape, align in [((999, 7), True), ((1, 10_003), False), ((3, 1), True)]:
        cpu = init._empty(shape, dtype)
        gpu = init._empty(shape, dtype)
        if not align:
            gpu = unaligned(gpu.view(np.ndarray)).view(type(gpu))
        with pytest.MonkeyPatch.context() as m:
            m.setattr(_fill, "fill_function", lambda target: fusedopt._core.init_fill)
            getattr(init, fill)(cpu, **kwargs, seed=11)
        getattr(init, fill)(gpu, **kwargs, seed=11)
        assert gpu.tobytes() == cpu.tobytes(), f"{fill} {dtype} {shape}: the CUDA fill's bits differ from the CPU's"


def test_chunk_table_cuts_each_tensor_from_its_first_element():
    sizes = [0, 5, 12, 1, 25]
    chunk_tensor, chunk_start, sizes_out, ptrs = cuda.build_chunk_table([[1, 2, 3, 4, 5], [6, 7, 8, 9, 10]], sizes, 12)
    expected = [(t, s) for t, n in enumerate(sizes) for s in range(0, n, 12)]
    assert list(zip(chunk_tensor.tolist(), chunk_start.tolist())) == expected
    assert chunk_tensor.dtype == np.int32 and chunk_start.dtype == np.int64 and sizes_out.tolist() == sizes
    assert ptrs.tolist() == list(range(1, 11)) and ptrs.dtype == np.uint64


@pytest.mark.parametrize("value", ["0", "6", "abc", "-4"])
def test_a_bad_chunk_override_is_refused(value, monkeypatch):
    monkeypatch.setenv("FUSEDOPT_CUDA_CHUNK", value)
    with pytest.raises(ValueError, match="FUSEDOPT_CUDA_CHUNK"):
        cuda.chunk_size()



def test_arrays_on_another_device_than_the_current_one_are_refused_and_unchanged(host_device, monkeypatch):
    class FakeCupy:  # the current device is 1; the host emulation's arrays are on device 0
        class cuda:
            class runtime:
                @staticmethod
                def getDevice():
                    return 1

    monkeypatch.setattr(cuda, "_cupy", lambda: FakeCupy)
    monkeypatch.setattr(cuda, "_check_current_device", REAL_CHECK_CURRENT_DEVICE)
    params = [np.ones(10, np.float32)]
    m, v = [np.zeros(10, np.float32)], [np.zeros(10, np.float32)]
    with pytest.raises(ValueError, match=r"device 0.*current device is 1.*cupy.cuda.Device\(0\)"):
        fusedopt.functional.adam(params, [np.ones(10, np.float32)], m, v, step=1)
    assert (params[0] == 1).all() and not m[0].any() and not v[0].any()
    target = np.zeros(10, np.float32)
    with pytest.raises(ValueError, match="current device is 1"):
        init.normal_(target, seed=0)
    assert not target.any()


@pytest.mark.parametrize("variable,function", [("FUSEDOPT_CUDA_CHUNK", cuda.chunk_size),
                                               ("FUSEDOPT_CUDA_BLOCKS_PER_SM", cuda.blocks_per_sm)])
def test_launch_settings_from_the_environment_are_checked(variable, function, monkeypatch):
    monkeypatch.setenv(variable, "8")
    assert function() == 8
    for bad in ["0", "6x", "-4", "2000000000"] + (["6"] if variable == "FUSEDOPT_CUDA_CHUNK" else []):
        monkeypatch.setenv(variable, bad)
        with pytest.raises(ValueError, match=variable):
            function()


def test_the_grid_is_blocks_per_sm_times_the_multiprocessors(monkeypatch):
    monkeypatch.setattr(cuda, "_multiprocessors", lambda device: 132)
    assert cuda._max_blocks(0) == 132 * cuda.BLOCKS_PER_SM
    monkeypatch.setenv("FUSEDOPT_CUDA_BLOCKS_PER_SM", "3")
    assert cuda._max_blocks(0) == 396
