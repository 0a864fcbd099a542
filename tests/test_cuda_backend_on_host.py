"""The CUDA backend's host-side logic without a GPU or CuPy: the chunk table, the launch settings
from the environment, the grid, and the refusal of arrays on another device than the current one.
The kernels themselves run on the host emulation of CuPy (test_gpu_tests_on_host.py runs the GPU
test modules there) and on a GPU (pytest -m gpu)."""

import numpy as np
import pytest

import fusedopt
from fusedopt import backends, init
from fusedopt.backends import cuda

REAL_CHECK_CURRENT_DEVICE = cuda._check_current_device


def _host_check_list(name, arrays):
    for i, a in enumerate(arrays):
        assert isinstance(a, np.ndarray) and a.flags.c_contiguous and a.dtype == arrays[0].dtype, f"{name}[{i}]"
    return cuda._ListInfo(arrays[0].dtype, 0, tuple(a.shape for a in arrays), tuple(a.ctypes.data for a in arrays))


def test_chunk_table_cuts_each_tensor_from_its_first_element():
    sizes = [0, 5, 12, 1, 25]
    chunks, ptrs = cuda.build_chunk_table([[1, 2, 3, 4, 5], [6, 7, 8, 9, 10]], sizes, 12)
    expected = [(t, min(12, n - s), s) for t, n in enumerate(sizes) for s in range(0, n, 12)]
    # the kernels' ChunkInfo, 16 bytes: int32 tensor, int32 count, int64 first element
    records = chunks.view(np.dtype([("tensor", "<i4"), ("count", "<i4"), ("begin", "<i8")])).reshape(-1)
    assert chunks.dtype == np.int64 and chunks.shape == (len(expected), 2) and chunks.flags.c_contiguous
    assert [tuple(map(int, r)) for r in records] == expected
    assert ptrs.tolist() == list(range(1, 11)) and ptrs.dtype == np.uint64


@pytest.mark.parametrize("total,sms,expected", [
    (0, 132, cuda.MIN_CHUNK), (1000, 132, cuda.MIN_CHUNK), (10**8, 132, 65536), (10**9, 132, cuda.MAX_CHUNK),
    (10**7, 4, cuda.MAX_CHUNK), (10**6, 132, cuda.MIN_CHUNK)])
def test_the_chunk_grows_with_the_problem_to_about_16_chunks_per_multiprocessor(total, sms, expected, monkeypatch):
    monkeypatch.setattr(cuda, "_multiprocessors", lambda device_id: sms)
    chunk = cuda.chunk_size(total)
    assert chunk == expected and chunk % 4 == 0
    if cuda.MIN_CHUNK < chunk < cuda.MAX_CHUNK:
        assert cuda.CHUNKS_PER_SM * sms / 2 < -(-total // chunk) <= cuda.CHUNKS_PER_SM * sms


@pytest.mark.parametrize("value", ["0", "6", "abc", "-4"])
def test_a_bad_chunk_override_is_refused(value, monkeypatch):
    monkeypatch.setenv("FUSEDOPT_CUDA_CHUNK", value)
    with pytest.raises(ValueError, match="FUSEDOPT_CUDA_CHUNK"):
        cuda.chunk_size()



def test_arrays_on_another_device_than_the_current_one_are_refused_and_unchanged(monkeypatch):
    class FakeCupy:  # the current device is 1; the host emulation's arrays are on device 0
        class cuda:
            class runtime:
                @staticmethod
                def getDevice():
                    return 1

    monkeypatch.setattr(cuda, "_cupy", lambda: FakeCupy)
    monkeypatch.setattr(backends, "for_array", lambda a: cuda)  # NumPy arrays stand in for device memory
    monkeypatch.setattr(backends, "for_arrays", lambda arrays: cuda)
    monkeypatch.setattr(cuda, "_check_list", _host_check_list)
    monkeypatch.setattr(cuda, "fill_target", lambda tensor: tensor)
    monkeypatch.setattr(cuda, "_device_id", lambda array: 0)
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


def test_bfloat16_bits_round_as_ml_dtypes_does():
    """The CUDA backend's host rounding (bfloat16 state made or loaded for a GPU optimizer) against
    ml_dtypes: ties to even, the largest finite values, infinities, NaNs, denormals."""
    ml_dtypes = pytest.importorskip("ml_dtypes")
    words = np.array([0x3F808000, 0x3F818000, 0x3F80FFFF, 0x7F7FFFFF, 0x7F7F7FFF, 0x7F800000, 0xFF800000,
                      0x7FC00001, 0x7F800001, 0xFFFFFFFF, 0x00000001, 0x00008000, 0x80018000, 0, 0x80000000],
                     np.uint32)
    values = np.concatenate([words.view(np.float32), np.random.default_rng(0).standard_normal(10_000).astype(np.float32)])
    with np.errstate(invalid="ignore"):  # (ml_dtypes warns when it casts a NaN)
        expected = values.astype(ml_dtypes.bfloat16).view(np.uint16)
        got = cuda.bfloat16_bits(values)
        nan = np.isnan(values)
        assert got.dtype == np.uint16 and (got[~nan] == expected[~nan]).all()
        assert np.isnan(got[nan].view(ml_dtypes.bfloat16).astype(np.float32)).all()  # a NaN stays a NaN
