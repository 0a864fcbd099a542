// RMSprop on the GPU: slots {param, grad, square_avg, grad_avg, momentum_buffer}; the math is
// rules/rmsprop.hpp.
#include "fusedopt/cuda/multi_tensor.cuh"
#include "fusedopt/rules/rmsprop.hpp"

template <typename T, bool Centered, bool Momentum>
__device__ void rmsprop(const fusedopt::cuda::ChunkTable& c, const fusedopt::rules::RmspropScalars<T>& s) {
  using namespace fusedopt;
  cuda::for_each_element(c, [&](int t, long long i) {
    T* v = cuda::slot<T>(c, 2, t);
    T* a = Centered ? cuda::slot<T>(c, 3, t) : v;  // unused slots are not touched
    T* b = Momentum ? cuda::slot<T>(c, 4, t) : v;
    rules::rmsprop_element<T, Centered, Momentum>(cuda::slot<T>(c, 0, t)[i], cuda::slot<T>(c, 1, t)[i], v[i], a[i],
                                                  b[i], s);
  });
}

#define FUSEDOPT_RMSPROP_KERNEL(NAME, T)                                                             \
  extern "C" __global__ void NAME(FUSEDOPT_CHUNK_PARAMS, T grad_sign, T weight_decay, T alpha,        \
                                  T one_minus_alpha, T eps, T momentum, T lr, int centered,          \
                                  int has_momentum) {                                                \
    const fusedopt::cuda::ChunkTable c = FUSEDOPT_CHUNK_TABLE;                                        \
    const fusedopt::rules::RmspropScalars<T> s{grad_sign, weight_decay, alpha, one_minus_alpha, eps, momentum, lr}; \
    if (centered) has_momentum ? rmsprop<T, true, true>(c, s) : rmsprop<T, true, false>(c, s);        \
    else has_momentum ? rmsprop<T, false, true>(c, s) : rmsprop<T, false, false>(c, s);               \
  }
FUSEDOPT_RMSPROP_KERNEL(rmsprop_float32, float)
FUSEDOPT_RMSPROP_KERNEL(rmsprop_float64, double)
