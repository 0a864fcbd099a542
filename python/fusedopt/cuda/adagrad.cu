// Adagrad on the GPU: slots {param, grad, sum}; the math is rules/adagrad.hpp.
#include "fusedopt/cuda/multi_tensor.cuh"
#include "fusedopt/rules/adagrad.hpp"

#define FUSEDOPT_ADAGRAD_KERNEL(NAME, T)                                                            \
  extern "C" __global__ void NAME(FUSEDOPT_CHUNK_PARAMS, T grad_sign, T weight_decay, T clr, T eps) { \
    const fusedopt::cuda::ChunkTable c = FUSEDOPT_CHUNK_TABLE;                                        \
    const fusedopt::rules::AdagradScalars<T> s{grad_sign, weight_decay, clr, eps};                    \
    fusedopt::cuda::for_each_element(c, [&](int t, long long i) {                                     \
      fusedopt::rules::adagrad_element<T>(fusedopt::cuda::slot<T>(c, 0, t)[i],                        \
                                          fusedopt::cuda::slot<T>(c, 1, t)[i],                        \
                                          fusedopt::cuda::slot<T>(c, 2, t)[i], s);                    \
    });                                                                                               \
  }
FUSEDOPT_ADAGRAD_KERNEL(adagrad_float32, float)
FUSEDOPT_ADAGRAD_KERNEL(adagrad_float64, double)
