// Compiles the CUDA sources of python/fusedopt/cuda as plain C++ so a host without a GPU can run
// their kernels (tests/fake_cupy, run by tests/test_gpu_tests_on_host.py): the built-in index variables become globals
// and a launch runs every (block, thread) pair in turn. Valid for kernels whose threads never wait for
// each other within a block (no shared memory, no __syncthreads), which is all of ours; the two-pass
// rules' threads meet through an atomic counter, which run in turn is exact. A cooperative launch
// (Adafactor's step, whose grid waits for all its threads between phases: cooperative_groups.h here)
// runs each thread as a fiber of its own: each runs to the grid's next sync, in turn, and none goes on
// before all have reached it. The threads run in a new shuffled order (fixed seeds) between two syncs,
// so a phase that reads what another thread wrote without a sync between them most likely reads it
// unwritten here, as it could on a GPU.
#pragma once
#include <ucontext.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <numeric>
#include <random>
#include <type_traits>
#include <utility>
#include <vector>

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

[[noreturn]] inline void fail(const char* what) {
  std::fprintf(stderr, "host emulation: %s\n", what);
  std::abort();
}

// A thread of a cooperative launch: its own stack and context, and whether it has returned.
struct Fiber {
  ucontext_t context;
  std::unique_ptr<char[]> stack;
  unsigned block, thread;
  bool returned;
};
inline ucontext_t scheduler;
inline Fiber* running = nullptr;  // the fiber now running; none outside a cooperative launch
inline void (*running_body)(void**) = nullptr;
inline void** running_args = nullptr;
constexpr std::size_t kFiberStack = 64 * 1024;

inline void fiber_main() {
  running_body(running_args);
  running->returned = true;  // then back to the scheduler (uc_link)
}

// cooperative_groups::grid_group::sync(): back to the scheduler, which resumes this fiber once every
// thread of the grid has reached a sync.
inline void grid_sync() {
  if (running == nullptr) fail("grid.sync() in a launch that is not cooperative (an error on a GPU)");
  swapcontext(&running->context, &scheduler);
}

template <typename... Args>
void call_all(void** args) {
  using Kernel = void (*)(Args...);
  call(reinterpret_cast<Kernel>(args[0]), args + 1, std::index_sequence_for<Args...>{});
}

// The kernel over grid x block threads, one at a time; args as CuPy passes them (one pointer to
// each argument's value). cooperative: each thread a fiber, run to the grid's next sync in turn.
template <typename... Args>
void launch(void (*kernel)(Args...), unsigned grid, unsigned block, void** args, bool cooperative = false) {
  gridDim.x = grid;
  blockDim.x = block;
  if (!cooperative) {
    for (unsigned b = 0; b < grid; ++b) {
      for (unsigned t = 0; t < block; ++t) {
        blockIdx.x = b;
        threadIdx.x = t;
        call(kernel, args, std::index_sequence_for<Args...>{});
      }
    }
    return;
  }
  std::vector<void*> with_kernel{reinterpret_cast<void*>(kernel)};
  with_kernel.insert(with_kernel.end(), args, args + sizeof...(Args));
  running_body = &call_all<Args...>;
  running_args = with_kernel.data();
  std::vector<Fiber> fibers(static_cast<std::size_t>(grid) * block);
  for (std::size_t k = 0; k < fibers.size(); ++k) {
    Fiber& f = fibers[k];
    f.block = static_cast<unsigned>(k / block);
    f.thread = static_cast<unsigned>(k % block);
    f.returned = false;
    f.stack.reset(new char[kFiberStack]);
    getcontext(&f.context);
    f.context.uc_stack.ss_sp = f.stack.get();
    f.context.uc_stack.ss_size = kFiberStack;
    f.context.uc_link = &scheduler;
    makecontext(&f.context, &fiber_main, 0);
  }
  std::vector<std::size_t> order(fibers.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::mt19937_64 shuffle_bits(20261124);
  for (;;) {  // one round: every thread that has not returned runs to its next sync, or returns
    std::shuffle(order.begin(), order.end(), shuffle_bits);
    std::size_t waiting = 0, returned = 0;
    for (std::size_t k : order) {
      Fiber& f = fibers[k];
      if (f.returned) {
        ++returned;
        continue;
      }
      blockIdx.x = f.block;
      threadIdx.x = f.thread;
      running = &f;
      swapcontext(&scheduler, &f.context);
      running = nullptr;
      ++(f.returned ? returned : waiting);
    }
    if (waiting == 0) return;
    if (returned != 0) fail("grid.sync() reached by some threads of the grid while others returned (a deadlock on a GPU)");
  }
}

}  // namespace host_emulation
