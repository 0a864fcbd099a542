// SGD on the GPU: slots {param, grad, momentum_buffer}; the math is rules/sgd.hpp.
#include "fusedopt/cuda/multi_tensor.cuh"
#include "fusedopt/rules/sgd.hpp"

template <typename T, bool Momentum, bool Nesterov, bool FirstStep>
__device__ void sgd(const fusedopt::cuda::ChunkTable& c, const fusedopt::rules::SgdScalars<T>& s) {
  using namespace fusedopt;
  if constexpr (Momentum)
    cuda::for_each_element<T, 3, 0b101u>(
        c, [&](T* x) { rules::sgd_element<T, true, Nesterov, FirstStep>(x[0], x[1], x[2], s); });
  else  // no buffer: the rule does not touch its third argument
    cuda::for_each_element<T, 2, 0b1u>(
        c, [&](T* x) { rules::sgd_element<T, false, false, false>(x[0], x[1], x[0], s); });
}

#define FUSEDOPT_SGD_KERNEL(NAME, T)                                                                 \
  extern "C" __global__ void NAME(FUSEDOPT_CHUNK_PARAMS, T grad_sign, T weight_decay, T momentum,     \
                                  T one_minus_dampening, T lr, int has_momentum, int nesterov,        \
                                  int first_step) {                                                  \
    const fusedopt::cuda::ChunkTable c = FUSEDOPT_CHUNK_TABLE;                                        \
    const fusedopt::rules::SgdScalars<T> s{grad_sign, weight_decay, momentum, one_minus_dampening, lr}; \
    if (!has_momentum) sgd<T, false, false, false>(c, s);                                             \
    else if (first_step) nesterov ? sgd<T, true, true, true>(c, s) : sgd<T, true, false, true>(c, s); \
    else nesterov ? sgd<T, true, true, false>(c, s) : sgd<T, true, false, false>(c, s);               \
  }
FUSEDOPT_SGD_KERNEL(sgd_float32, float)
FUSEDOPT_SGD_KERNEL(sgd_float64, double)
