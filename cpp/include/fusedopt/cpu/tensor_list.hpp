// The CPU side of multi-tensor apply: a list of tensors (pointers per slot + sizes) and one
// OpenMP region that splits all their elements evenly over the threads.
#pragma once
#include <cstdint>
#include <omp.h>

#include "../common.hpp"

namespace fusedopt {
constexpr int kMaxSlots = 6;  // param, grad, up to three state buffers, and a float32 master copy

// Plain data only: this struct crosses from the binding into each ISA build.
struct TensorListView {
  int64_t n_tensors;
  const int64_t* offsets;         // n_tensors + 1 prefix sums of the element counts
  void* const* slots[kMaxSlots];  // slots[k][t]: tensor t of list k (nullptr lists are unused)
  int64_t serial_below;           // fewer elements than this: no OpenMP region
  int num_threads;                // the team of the OpenMP region (fusedopt's own count, not the ICV)
};
}  // namespace fusedopt

FUSEDOPT_NAMESPACE_BEGIN
namespace cpu {

template <typename T>
inline T* slot(const TensorListView& list, int k, int64_t t) {
  return static_cast<T*>(list.slots[k][t]);
}

// Calls body(t, begin, end) for every tensor t and element range [begin, end) of it, so that
// each thread gets one contiguous share of the concatenated elements (balanced whatever the
// tensor sizes). Each element is touched by exactly one call.
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
#pragma omp parallel num_threads(list.num_threads)
  {
    const int64_t threads = omp_get_num_threads();
    constexpr int64_t kAlign = 16;  // shares start on a 64-byte line for float32
    const int64_t share = ((total + threads - 1) / threads + kAlign - 1) / kAlign * kAlign;
    const int64_t lo = omp_get_thread_num() * share < total ? omp_get_thread_num() * share : total;
    const int64_t hi = lo + share < total ? lo + share : total;
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
  }
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

}  // namespace cpu
FUSEDOPT_NAMESPACE_END
