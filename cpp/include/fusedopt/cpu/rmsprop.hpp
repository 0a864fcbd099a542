// CPU driver for RMSprop: slots {param, grad, square_avg, grad_avg (if centered),
// momentum_buffer (if momentum)}.
#pragma once
#include "../rules/rmsprop.hpp"
#include "tensor_list.hpp"

FUSEDOPT_NAMESPACE_BEGIN
namespace cpu {

template <typename T>
void rmsprop(const TensorListView& list, const RmspropHyper& h) {
  const rules::RmspropScalars<T> s = rules::rmsprop_scalars<T>(h);
  with_flag(h.centered, [&](auto centered) {
    with_flag(h.momentum > 0.0, [&](auto has_momentum) {
      constexpr bool Centered = decltype(centered)::value;
      constexpr bool Momentum = decltype(has_momentum)::value;
      for_each_range(list, [&](int64_t t, int64_t begin, int64_t end) {
        T* p = slot<T>(list, 0, t);
        const T* g = slot<T>(list, 1, t);
        T* v = slot<T>(list, 2, t);
        T* a = Centered ? slot<T>(list, 3, t) : v;  // unused slots are not touched
        T* b = Momentum ? slot<T>(list, 4, t) : v;
        simd_for(begin, end, [&](int64_t i) {
          rules::rmsprop_element<T, Centered, Momentum>(p[i], g[i], v[i], a[i], b[i], s);
        });
      });
    });
  });
}

}  // namespace cpu
FUSEDOPT_NAMESPACE_END
