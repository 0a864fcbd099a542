// CPU driver for Adagrad: slots {param, grad, sum}.
#pragma once
#include "../rules/adagrad.hpp"
#include "tensor_list.hpp"

FUSEDOPT_NAMESPACE_BEGIN
namespace cpu {

template <typename T>
void adagrad(const TensorListView& list, const AdagradHyper& h) {
  const rules::AdagradScalars<T> s = rules::adagrad_scalars<T>(h);
  for_each_range(list, [&](int64_t t, int64_t begin, int64_t end) {
    T* p = slot<T>(list, 0, t);
    const T* g = slot<T>(list, 1, t);
    T* sum = slot<T>(list, 2, t);
    simd_for(begin, end, [&](int64_t i) { rules::adagrad_element<T>(p[i], g[i], sum[i], s); });
  });
}

}  // namespace cpu
FUSEDOPT_NAMESPACE_END
