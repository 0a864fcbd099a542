// CPU driver for SGD: slots {param, grad, momentum_buffer (if momentum)}.
#pragma once
#include "../rules/sgd.hpp"
#include "tensor_list.hpp"

FUSEDOPT_NAMESPACE_BEGIN
namespace cpu {

template <typename T>
void sgd(const TensorListView& list, const SgdHyper& h) {
  const rules::SgdScalars<T> s = rules::sgd_scalars<T>(h);
  const bool momentum = h.momentum != 0.0;
  with_flag(momentum, [&](auto has_momentum) {
    with_flag(momentum && h.nesterov, [&](auto nesterov) {
      with_flag(momentum && h.first_step, [&](auto first_step) {
        constexpr bool Momentum = decltype(has_momentum)::value;
        constexpr bool Nesterov = decltype(nesterov)::value;
        constexpr bool FirstStep = decltype(first_step)::value;
        for_each_range(list, [&](int64_t t, int64_t begin, int64_t end) {
          T* p = slot<T>(list, 0, t);
          const T* g = slot<T>(list, 1, t);
          T* b = Momentum ? slot<T>(list, 2, t) : p;  // not touched without momentum
          simd_for(begin, end, [&](int64_t i) {
            rules::sgd_element<T, Momentum, Nesterov, FirstStep>(p[i], g[i], b[i], s);
          });
        });
      });
    });
  });
}

}  // namespace cpu
FUSEDOPT_NAMESPACE_END
