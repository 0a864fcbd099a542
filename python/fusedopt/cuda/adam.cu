// Adam / AdamW on the GPU: slots {param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq}; the math is
// rules/adam.hpp, the same as the CPU's.
#include "fusedopt/cuda/multi_tensor.cuh"
#include "fusedopt/rules/adam.hpp"

template <typename T>
__device__ void adam(const fusedopt::cuda::ChunkTable& c, const fusedopt::rules::AdamScalars<T>& s, int amsgrad) {
  using namespace fusedopt;
  cuda::for_each_element(c, [&](int t, long long i) {
    T* p = cuda::slot<T>(c, 0, t);
    const T* g = cuda::slot<T>(c, 1, t);
    T* m = cuda::slot<T>(c, 2, t);
    T* v = cuda::slot<T>(c, 3, t);
    if (amsgrad) rules::adam_element<T, true>(p[i], g[i], m[i], v[i], cuda::slot<T>(c, 4, t)[i], s);
    else rules::adam_element<T, false>(p[i], g[i], m[i], v[i], v[i], s);
  });
}

#define FUSEDOPT_ADAM_KERNEL(NAME, T)                                                               \
  extern "C" __global__ void NAME(FUSEDOPT_CHUNK_PARAMS, T grad_sign, T l2, T decay, T beta1, T omb1, \
                                  T beta2, T omb2, T step_size, T eps, int amsgrad) {              \
    adam<T>(FUSEDOPT_CHUNK_TABLE, {grad_sign, l2, decay, beta1, omb1, beta2, omb2, step_size, eps}, amsgrad); \
  }
FUSEDOPT_ADAM_KERNEL(adam_float32, float)
FUSEDOPT_ADAM_KERNEL(adam_float64, double)
