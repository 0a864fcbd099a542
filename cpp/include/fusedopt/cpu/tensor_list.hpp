// The CPU side of multi-tensor apply: a list of tensors (pointers per slot + sizes) and one parallel
// job over chunks of all their elements, claimed by whichever threads are running.
#pragma once
#include <cstdint>
#include <type_traits>

#include "../common.hpp"

namespace fusedopt {
constexpr int kMaxSlots = 6;  // param, grad, up to three state buffers, and a float32 master copy

// Plain data only: this struct crosses from the binding into each ISA build.
struct TensorListView {
  int64_t n_tensors;
  const int64_t* offsets;         // n_tensors + 1 prefix sums of the element counts
  void* const* slots[kMaxSlots];  // slots[k][t]: tensor t of list k (nullptr lists are unused)
  int64_t serial_below;           // fewer elements than this: no parallel job
  int num_threads;                // threads a step may use (fusedopt's own count, not OpenMP's ICV)
};

// The kernels' threads (cpp/src/thread_pool.cpp, one pool for every ISA build): task(context, c) for
// every chunk c in [0, n_chunks), each exactly once, on the calling thread and up to threads − 1 pool
// workers, which claim chunks as they get to run. Returns when every chunk is done; it waits for the
// chunks, never for a worker that claimed none. A second caller while a job runs does its own chunks
// alone. More than kMaxChunks chunks run on the calling thread.
using ChunkTask = void (*)(void* context, int64_t chunk);
constexpr int64_t kMaxChunks = (int64_t(1) << 18) - 1;
void run_chunks(int64_t n_chunks, int threads, ChunkTask task, void* context) noexcept;
// The threads a job of `threads` gets now (1 + the workers started for it).
int team_size(int threads) noexcept;
// What the workers did so far, for benchmarks: parallel jobs, their chunks, the chunks workers ran,
// and the jobs in which a worker ran any.
struct PoolStats {
  int64_t jobs = 0, chunks = 0, chunks_by_workers = 0, jobs_helped = 0;
  int64_t openmp_jobs = 0;  // jobs run on the OpenMP team instead (set_thread_runtime)
};
PoolStats pool_stats() noexcept;
// Run jobs on the OpenMP runtime's team (openmp) or on the pool (the default); a child of fork() uses
// the pool either way.
void set_thread_runtime(bool openmp) noexcept;
bool thread_runtime_is_openmp() noexcept;
// How idle workers wait for the next job: spin for spin_ns of their CPU time (yielding their core every
// few checks if `yields`), then sleep; a worker that found `misses` jobs in a row already claimed by
// others sleeps at once until it gets a chunk again. For benchmarks that compare wait policies.
void set_worker_wait(int64_t spin_ns, bool yields, int misses) noexcept;
}  // namespace fusedopt

FUSEDOPT_NAMESPACE_BEGIN
namespace cpu {

template <typename T>
inline T* slot(const TensorListView& list, int k, int64_t t) {
  return static_cast<T*>(list.slots[k][t]);
}

// body(c) for every c in [0, n) over `threads` threads (run_chunks), each exactly once.
template <typename Body>
void parallel_for(int64_t n, int threads, Body&& body) {
  using B = std::remove_reference_t<Body>;
  run_chunks(n, threads, [](void* context, int64_t c) { (*static_cast<B*>(context))(c); }, &body);
}

// Chunks per thread of a step: enough that the threads that are running take over the share of one
// that the scheduler has parked, few enough that claiming costs nothing.
constexpr int64_t kChunksPerThread = 8;
constexpr int64_t kMinChunk = 2048;  // elements
constexpr int64_t kAlign = 16;       // chunks start on a 64-byte line for float32

// Calls body(t, begin, end) for every tensor t and element range [begin, end) of it, each element by
// exactly one call: the concatenated elements cut into aligned chunks (balanced whatever the tensor
// sizes), claimed by the threads as they run. Below serial_below elements, on the calling thread.
template <typename Body>
void for_each_range(const TensorListView& list, Body&& body) {
  const int64_t n = list.n_tensors;
  const int64_t total = list.offsets[n];
  if (total < list.serial_below || list.num_threads <= 1) {
    for (int64_t t = 0; t < n; ++t) {
      const int64_t size = list.offsets[t + 1] - list.offsets[t];
      if (size > 0) body(t, int64_t(0), size);
    }
    return;
  }
  const int64_t wanted = list.num_threads * kChunksPerThread;
  int64_t chunk = ((total + wanted - 1) / wanted + kAlign - 1) / kAlign * kAlign;
  if (chunk < kMinChunk) chunk = kMinChunk;
  parallel_for((total + chunk - 1) / chunk, list.num_threads, [&](int64_t c) {
    const int64_t lo = c * chunk;
    const int64_t hi = lo + chunk < total ? lo + chunk : total;
    // first tensor whose end lies past lo (binary search over the prefix sums)
    int64_t first = 0, last = n;
    while (first < last) {
      const int64_t mid = (first + last) / 2;
      if (list.offsets[mid + 1] <= lo) first = mid + 1; else last = mid;
    }
    for (int64_t t = first; t < n && list.offsets[t] < hi; ++t) {
      const int64_t begin = (lo > list.offsets[t] ? lo : list.offsets[t]) - list.offsets[t];
      const int64_t end = (hi < list.offsets[t + 1] ? hi : list.offsets[t + 1]) - list.offsets[t];
      if (end > begin) body(t, begin, end);
    }
  });
}

// The inner loop over one range: a SIMD body over a multiple of 16 elements, then a scalar tail.
// `omp simd` tells the compiler that elements are independent (no aliasing between slots).
template <typename F>
inline void simd_for(int64_t begin, int64_t end, F&& f) {
  const int64_t vector_end = begin + (end - begin) / 16 * 16;
#pragma omp simd
  for (int64_t i = begin; i < vector_end; ++i) f(i);
  for (int64_t i = vector_end; i < end; ++i) f(i);
}

// simd_for over a range of `line` (an array the loop reads and writes, of itemsize bytes): the
// elements before its first one on a 64-byte line go first through the scalar loop, so that the
// vectors load and store whole cache lines. NumPy puts large arrays 16 bytes past a page, and a
// 64-byte vector there spans two lines (one thread's Adam at 1e7: 9.3 ms instead of 5.8). Scalar and
// vector iterations compute the same bits. (A separate function: with the peel in simd_for itself,
// GCC no longer kept the 16-bit path's 16-element blocks in registers, 2x slower.)
template <typename F>
inline void simd_for_lined(int64_t begin, int64_t end, F&& f, const void* line, int64_t itemsize) {
  const auto misaligned = static_cast<int64_t>(reinterpret_cast<uintptr_t>(line) % 64);
  int64_t start = begin;
  if (misaligned % itemsize == 0) start += ((64 - misaligned) % 64) / itemsize;
  if (start > end) start = end;
  for (int64_t i = begin; i < start; ++i) f(i);
  simd_for(start, end, f);
}

}  // namespace cpu
FUSEDOPT_NAMESPACE_END
