// Every kernel of python/fusedopt/cuda, compiled for the host (see host_emulation.hpp) and reached
// by name: launch_kernel("adam_float32", grid, block, args).
#include "host_emulation.hpp"

#include "adagrad.cu"
#include "adam.cu"
#include "init.cu"
#include "rmsprop.cu"
#include "sgd.cu"

#define FUSEDOPT_HOST_KERNELS(X)                                                         \
  X(sgd_float32) X(sgd_float64) X(adagrad_float32) X(adagrad_float64) X(rmsprop_float32) \
  X(rmsprop_float64) X(adam_float32) X(adam_float64) X(init_fill_float32)                \
  X(init_fill_float64) X(init_fill_float16) X(init_fill_bfloat16)

extern "C" int launch_kernel(const char* name, unsigned grid, unsigned block, void** args) {
#define FUSEDOPT_LAUNCH_IF_NAMED(kernel)                     \
  if (std::strcmp(name, #kernel) == 0) {                     \
    host_emulation::launch(kernel, grid, block, args);       \
    return 0;                                                \
  }
  FUSEDOPT_HOST_KERNELS(FUSEDOPT_LAUNCH_IF_NAMED)
  return -1;
}
