"""The rules headers on the GPU (CuPy RawModule / NVRTC, --fmad=false): a float32 Adam trajectory
and Philox fills must give the same bits as the CPU kernels. Skipped without CuPy and a CUDA device."""

import numpy as np
import pytest

import fusedopt
from fusedopt import init

from gpu_support import cupy, pytestmark  # noqa: F401 - pytestmark marks this module

SOURCE = r'''
#include "fusedopt/rules/adam.hpp"
#include "fusedopt/rules/init.hpp"
using namespace fusedopt;

extern "C" __global__ void adam_step_f32(float* p, const float* g, float* m, float* v, long long n,
                                         const rules::AdamScalars<float> s) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
    float unused = 0.0f;
    rules::Adam<0>::element(p[i], g[i], m[i], v[i], unused, s);
  }
}

extern "C" __global__ void normal_f32(float* out, long long n_blocks, unsigned long long seed,
                                      unsigned long long stream) {
  InitHyper h{};
  h.distribution = Distribution::Normal;
  h.mean = 0.0; h.std = 1.0; h.seed = seed; h.stream = stream;
  for (long long b = blockIdx.x * (long long)blockDim.x + threadIdx.x; b < n_blocks; b += (long long)gridDim.x * blockDim.x) {
    float v[4];
    rules::init_block<float>(h, (unsigned long long)b, v);
    for (int j = 0; j < 4; ++j) out[4 * b + j] = v[j];
  }
}

extern "C" __global__ void uniform_f64(double* out, long long n_blocks, unsigned long long seed,
                                       unsigned long long stream, double upper_below) {
  InitHyper h{};
  h.distribution = Distribution::Uniform;
  h.a = 0.0; h.b = 1.0; h.upper_below = upper_below; h.seed = seed; h.stream = stream;
  for (long long b = blockIdx.x * (long long)blockDim.x + threadIdx.x; b < n_blocks; b += (long long)gridDim.x * blockDim.x) {
    double v[4];
    rules::init_block<double>(h, (unsigned long long)b, v);
    for (int j = 0; j < 2; ++j) out[2 * b + j] = v[j];
  }
}
'''


@pytest.fixture(scope="module")
def module():
    from fusedopt.backends import cuda  # the headers' hash in the source: CuPy's disk cache sees header changes

    return cupy.RawModule(code=f"// {cuda._headers_digest()}\n{SOURCE}",
                          options=("-std=c++17", "--fmad=false", f"-I{fusedopt.get_include()}"))


def adam_scalars_f32(step, lr):
    """Adam's Scalars<float>, from the spec, as the structured NumPy scalar a kernel takes by value."""
    spec = fusedopt.functional.adam.spec
    h = dict(lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01, amsgrad=False, maximize=False)
    values = np.frombuffer(spec.packed_scalars(h, step), np.float64).astype(np.float32)
    return values.view(np.dtype([(f, np.float32) for f in spec.fields]))[0]


def test_adam_float32_trajectory_is_bitwise_equal_on_cpu_and_gpu(module):
    n = 1_000_003
    rng = np.random.default_rng(0)
    p = rng.standard_normal(n).astype(np.float32)
    m, v = np.zeros_like(p), np.zeros_like(p)
    dp, dm, dv = cupy.asarray(p), cupy.asarray(m), cupy.asarray(v)
    kernel = module.get_function("adam_step_f32")
    for t in range(1, 21):
        g = rng.standard_normal(n).astype(np.float32)
        lr = 1e-3 if t <= 10 else 3e-4
        fusedopt.functional.adam([p], [g], [m], [v], step=t, lr=lr, weight_decay=0.01)
        kernel((1024,), (256,), (dp, cupy.asarray(g), dm, dv, np.int64(n), adam_scalars_f32(t, lr)))
    assert cupy.asnumpy(dp).tobytes() == p.tobytes()
    assert cupy.asnumpy(dm).tobytes() == m.tobytes() and cupy.asnumpy(dv).tobytes() == v.tobytes()


def test_philox_fills_are_bitwise_equal_on_cpu_and_gpu(module):
    n = 400_000
    cpu = init.normal((n,), seed=7)
    out = cupy.empty(n, cupy.float32)
    module.get_function("normal_f32")((512,), (256,), (out, np.int64(n // 4), np.uint64(7), np.uint64(0)))
    gpu = cupy.asnumpy(out)
    same = np.count_nonzero(gpu.view(np.uint32) == cpu.view(np.uint32))
    assert same == n, f"{n - same} of {n} normals differ; max |diff| {np.abs(gpu - cpu).max()}"
    cpu64 = init.uniform((n,), dtype=np.float64, seed=8)
    out64 = cupy.empty(n, cupy.float64)
    module.get_function("uniform_f64")((512,), (256,), (out64, np.int64(n // 2), np.uint64(8), np.uint64(0),
                                                          np.float64(np.nextafter(1.0, 0.0))))
    assert cupy.asnumpy(out64).tobytes() == cpu64.tobytes()
