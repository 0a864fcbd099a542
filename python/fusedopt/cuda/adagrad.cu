// Adagrad on the GPU: slots {param, grad, sum}; the math is rules/adagrad.hpp.
#include "fusedopt/cuda/multi_tensor.cuh"
#include "fusedopt/rules/adagrad.hpp"

#define FUSEDOPT_ADAGRAD_KERNEL(NAME, T)                                                            \
  extern "C" __global__ void NAME(FUSEDOPT_CHUNK_PARAMS, T grad_sign, T weight_decay, T clr, T eps) { \
    const fusedopt::rules::AdagradScalars<T> s{grad_sign, weight_decay, clr, eps};                    \
    fusedopt::cuda::for_each_element<T, 3, 0b101u>(                                                  \
        FUSEDOPT_CHUNK_TABLE, [&](T* x) { fusedopt::rules::adagrad_element<T>(x[0], x[1], x[2], s); }); \
  }
FUSEDOPT_ADAGRAD_KERNEL(adagrad_float32, float)
FUSEDOPT_ADAGRAD_KERNEL(adagrad_float64, double)
