// RMSprop on the GPU: slots {param, grad, square_avg, grad_avg, momentum_buffer}, the last two
// only when centered / momentum > 0 (so slot numbers shift when one is absent: the host passes
// only the lists in use); the math is rules/rmsprop.hpp.
#include "fusedopt/cuda/multi_tensor.cuh"
#include "fusedopt/rules/rmsprop.hpp"

template <typename T, bool Centered, bool Momentum>
__device__ void rmsprop(const fusedopt::cuda::ChunkTable& c, const fusedopt::rules::RmspropScalars<T>& s) {
  using namespace fusedopt;
  constexpr int kSlots = 3 + Centered + Momentum;
  constexpr unsigned kWritten = (1u << kSlots) - 1u - 0b10u;  // all but the grad
  cuda::for_each_element<T, kSlots, kWritten>(c, [&](T* x) {
    T& grad_avg = Centered ? x[3] : x[2];                // unused slots are not touched by the rule
    T& momentum_buffer = Momentum ? x[kSlots - 1] : x[2];
    rules::rmsprop_element<T, Centered, Momentum>(x[0], x[1], x[2], grad_avg, momentum_buffer, s);
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
