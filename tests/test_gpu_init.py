"""Initializers on CuPy arrays (and other CUDA arrays): the same bits as on the CPU for the same
(seed, stream), in place, without copies of the target. Skipped without CuPy and a CUDA device."""

import numpy as np
import pytest

from fusedopt import init

from gpu_support import cupy, pytestmark  # noqa: F401 - pytestmark marks this module

FILLS = [
    ("uniform_", dict(a=-0.5, b=2.0)),
    ("normal_", dict(mean=1.0, std=0.5)),
    ("trunc_normal_", dict(mean=0.1, std=1.0, a=-1.0, b=1.5)),
    # bounds at ±4σ: about 0.3 % of the values take erfinv's tail polynomial (the GPU branches between the two)
    ("trunc_normal_", dict(mean=0.0, std=1.0, a=-4.0, b=4.0)),
    ("xavier_uniform_", dict()),
    ("xavier_normal_", dict(truncated=True)),
    ("kaiming_uniform_", dict(nonlinearity="relu")),
    ("kaiming_normal_", dict(mode="fan_out")),
    ("lecun_normal_", dict()),
    ("orthogonal_", dict(gain=2.0)),
]


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16"])
@pytest.mark.parametrize("fill,kwargs", FILLS, ids=[f[0] for f in FILLS])
def test_gpu_fill_has_the_cpu_bits(fill, kwargs, dtype):
    for shape in [(1000, 257), (3, 5, 7), (1, 1)]:
        cpu = np.empty(shape, dtype)
        gpu = cupy.empty(shape, dtype)
        assert getattr(init, fill)(gpu, **kwargs, seed=5) is gpu
        getattr(init, fill)(cpu, **kwargs, seed=5)
        assert cupy.asnumpy(gpu).tobytes() == cpu.tobytes(), f"{fill} {dtype} {shape}"


def test_generator_streams_match_on_cpu_and_gpu():
    g_cpu, g_gpu = init.Generator(3), init.Generator(3)
    for _ in range(3):
        cpu = init.normal_(np.empty(10_001, np.float32), generator=g_cpu)
        gpu = init.normal_(cupy.empty(10_001, cupy.float32), generator=g_gpu)
        assert cupy.asnumpy(gpu).tobytes() == cpu.tobytes()


def test_unaligned_gpu_view_is_filled_in_place():
    base = cupy.zeros(1001, cupy.float32)
    view = base[1:]  # 4 bytes past the allocation: the scalar store path
    init.uniform_(view, seed=1)
    expected = init.uniform_(np.empty(1000, np.float32), seed=1)
    assert cupy.asnumpy(base[1:]).tobytes() == expected.tobytes() and float(base[0]) == 0.0


def test_constant_eye_and_zeros_on_gpu():
    w = cupy.empty((3, 4), cupy.float64)
    init.constant_(w, 2.5)
    assert (cupy.asnumpy(w) == 2.5).all()
    init.eye_(w)
    np.testing.assert_array_equal(cupy.asnumpy(w), np.eye(3, 4))
    init.zeros_(w)
    assert not cupy.asnumpy(w).any()


def test_non_contiguous_gpu_target_is_refused_and_unchanged():
    base = cupy.zeros((4, 6), cupy.float32)
    with pytest.raises(ValueError, match="contiguous"):
        init.normal_(base[:, ::2], seed=0)
    assert not cupy.asnumpy(base).any()
    with pytest.raises(TypeError, match="dtype"):
        init.normal_(cupy.zeros(4, cupy.int32), seed=0)


def test_array_of_another_framework_is_filled_in_place():
    owner = cupy.zeros((64, 33), cupy.float32)
    foreign = type("OtherFrameworkArray", (), {"__cuda_array_interface__": owner.__cuda_array_interface__})()
    assert init.xavier_uniform_(foreign, seed=4) is foreign
    expected = init.xavier_uniform_(np.empty((64, 33), np.float32), seed=4)
    assert cupy.asnumpy(owner).tobytes() == expected.tobytes()


def test_torch_cuda_tensor_is_filled_through_a_view():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA here")
    t = torch.empty(300, 40, device="cuda")
    assert init.kaiming_uniform_(t, seed=9) is t
    expected = init.kaiming_uniform_(np.empty((300, 40), np.float32), seed=9)
    assert t.cpu().numpy().tobytes() == expected.tobytes()
