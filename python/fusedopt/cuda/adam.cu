// Adam / AdamW on the GPU: slots {param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq}; the math is
// rules/adam.hpp, the same as the CPU's.
#include "fusedopt/cuda/multi_tensor.cuh"
#include "fusedopt/rules/adam.hpp"

template <typename T>
__device__ void adam(const fusedopt::cuda::ChunkTable& c, const fusedopt::rules::AdamScalars<T>& s, int amsgrad) {
  using namespace fusedopt;
  if (amsgrad)
    cuda::for_each_element<T, 5, 0b11101u>(
        c, [&](T* x) { rules::adam_element<T, true>(x[0], x[1], x[2], x[3], x[4], s); });
  else
    cuda::for_each_element<T, 4, 0b1101u>(
        c, [&](T* x) { rules::adam_element<T, false>(x[0], x[1], x[2], x[3], x[3], s); });
}

#define FUSEDOPT_ADAM_KERNEL(NAME, T)                                                               \
  extern "C" __global__ void NAME(FUSEDOPT_CHUNK_PARAMS, T grad_sign, T l2, T decay, T beta1, T omb1, \
                                  T beta2, T omb2, T step_size, T eps, int amsgrad) {              \
    adam<T>(FUSEDOPT_CHUNK_TABLE, {grad_sign, l2, decay, beta1, omb1, beta2, omb2, step_size, eps}, amsgrad); \
  }
FUSEDOPT_ADAM_KERNEL(adam_float32, float)
FUSEDOPT_ADAM_KERNEL(adam_float64, double)
