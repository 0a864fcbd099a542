// A bandwidth probe with Adam's memory pattern and next to no arithmetic: reads 4 arrays
// {p, g, m, v}, writes 3 {p, m, v}. Benchmarks use it as the ceiling for a fused step; it runs
// through the same multi-tensor driver (threads, split) as the optimizers.
#pragma once
#include "tensor_list.hpp"

FUSEDOPT_NAMESPACE_BEGIN
namespace cpu {

template <typename T>
void stream_adam_pattern(const TensorListView& list, const double& scale) {
  const T c = T(scale);  // 0 in practice: the values stay, the traffic is the same
  for_each_range(list, [&](int64_t t, int64_t begin, int64_t end) {
    T* p = slot<T>(list, 0, t);
    const T* g = slot<T>(list, 1, t);
    T* m = slot<T>(list, 2, t);
    T* v = slot<T>(list, 3, t);
    simd_for_lined(begin, end, [&](int64_t i) {
      const T cg = c * g[i];
      p[i] += cg;
      m[i] += cg;
      v[i] += cg;
    }, p + begin, sizeof(T));
  });
}

// Write-only probe: the ceiling for the initializers (one store stream per element).
template <typename T>
void stream_write(const TensorListView& list, const double& value) {
  const T c = T(value);
  for_each_range(list, [&](int64_t t, int64_t begin, int64_t end) {
    T* out = slot<T>(list, 0, t);
    simd_for_lined(begin, end, [&](int64_t i) { out[i] = c; }, out + begin, sizeof(T));
  });
}

}  // namespace cpu
FUSEDOPT_NAMESPACE_END
