// CPU driver for Adam / AdamW: slots {param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq}.
#pragma once
#include "../rules/adam.hpp"
#include "tensor_list.hpp"

FUSEDOPT_NAMESPACE_BEGIN
namespace cpu {

template <typename T>
void adam(const TensorListView& list, const AdamHyper& h) {
  const rules::AdamScalars<T> s = rules::adam_scalars<T>(h);
  with_flag(h.amsgrad, [&](auto amsgrad) {
    constexpr bool Amsgrad = decltype(amsgrad)::value;
    for_each_range(list, [&](int64_t t, int64_t begin, int64_t end) {
      T* p = slot<T>(list, 0, t);
      const T* g = slot<T>(list, 1, t);
      T* m = slot<T>(list, 2, t);
      T* v = slot<T>(list, 3, t);
      T* v_max = Amsgrad ? slot<T>(list, 4, t) : v;  // not touched without amsgrad
      simd_for(begin, end, [&](int64_t i) {
        rules::adam_element<T, Amsgrad>(p[i], g[i], m[i], v[i], v_max[i], s);
      });
    });
  });
}

}  // namespace cpu
FUSEDOPT_NAMESPACE_END
