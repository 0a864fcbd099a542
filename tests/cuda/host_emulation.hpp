// Compiles the CUDA sources of python/fusedopt/cuda as plain C++ so a host without a GPU can run
// their kernels (tests/fake_cupy, run by tests/test_gpu_tests_on_host.py): the built-in index variables become globals
// and a launch runs every (block, thread) pair in turn. Valid for kernels whose threads never wait for
// each other (no shared memory, no __syncthreads), which is all of ours; the two-pass rules' threads
// meet through an atomic counter, which run in turn is exact.
#pragma once
#include <cmath>
#include <cstring>
#include <type_traits>
#include <utility>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)

struct alignas(16) float4 {
  float x, y, z, w;
};
struct alignas(16) double2 {
  double x, y;
};
struct alignas(16) uint4 {
  unsigned x, y, z, w;
};
// Streaming loads and stores: on the host, plain ones.
template <typename V>
inline V __ldcs(const V* p) {
  return *p;
}
template <typename V>
inline void __stcs(V* p, V v) {
  *p = v;
}

struct HostDim3 {
  unsigned x = 1, y = 1, z = 1;
};
inline HostDim3 threadIdx, blockIdx, blockDim, gridDim;

inline unsigned atomicAdd(unsigned* address, unsigned value) {
  const unsigned old = *address;
  *address = old + value;
  return old;
}
inline void __threadfence() {}

namespace host_emulation {

template <typename... Args, std::size_t... I>
void call(void (*kernel)(Args...), void** args, std::index_sequence<I...>) {
  kernel(*static_cast<std::remove_reference_t<Args>*>(args[I])...);
}

// The kernel over grid x block threads, one at a time; args as CuPy passes them (one pointer to
// each argument's value).
template <typename... Args>
void launch(void (*kernel)(Args...), unsigned grid, unsigned block, void** args) {
  gridDim.x = grid;
  blockDim.x = block;
  for (unsigned b = 0; b < grid; ++b) {
    for (unsigned t = 0; t < block; ++t) {
      blockIdx.x = b;
      threadIdx.x = t;
      call(kernel, args, std::index_sequence_for<Args...>{});
    }
  }
}

}  // namespace host_emulation
