// The generic CPU driver: one rule variant over a tensor list, every tensor's elements split over
// the threads (tensor_list.hpp), the inner loop SIMD over a chunk. Slot k of the rule's element is
// list k of the view when the variant uses it, otherwise a local the rule never reads.
#pragma once
#include <utility>

#include "../optimizers.hpp"
#include "tensor_list.hpp"

FUSEDOPT_NAMESPACE_BEGIN
namespace cpu {

struct Absent {};  // the pointer type of a slot the variant does not use

template <typename T>
inline T& at(T* p, int64_t i, T&) { return p[i]; }
template <typename T>
inline T& at(Absent*, int64_t, T& unused) { return unused; }

template <class Rule, typename T, typename... P>
inline void update_range(int64_t begin, int64_t end, const typename Rule::template Scalars<T>& s, P*... p) {
  // always_inline: a call per element would keep the loop from being vectorized (GCC left NAdam's
  // element, the largest, as a call: 26 % of the bandwidth instead of 90+ %).
  simd_for(begin, end, [&](int64_t i) __attribute__((always_inline)) {
    T unused = T(0);
    Rule::element(at<T>(p, i, unused)..., s);
  });
}

template <class Rule, typename T, int K>
inline auto slot_pointer(const TensorListView& list, int64_t t) {
  if constexpr ((Rule::present >> K) & 1u) {
    return slot<T>(list, rules::list_index(Rule::present, K), t);
  } else {
    return static_cast<Absent*>(nullptr);
  }
}

template <class Rule, typename T, int... K>
void apply_slots(const TensorListView& list, const void* scalars, std::integer_sequence<int, K...>) {
  const auto s = *static_cast<const typename Rule::template Scalars<T>*>(scalars);
  for_each_range(list, [&](int64_t t, int64_t begin, int64_t end) {
    update_range<Rule, T>(begin, end, s, slot_pointer<Rule, T, K>(list, t)...);
  });
}

// One step of Rule (a variant, e.g. rules::Adam<1>) in type T; scalars points to its Scalars<T>.
template <template <unsigned> class Family, unsigned Flags, typename T>
void apply(const TensorListView& list, const void* scalars) {
  apply_slots<Family<Flags>, T>(list, scalars,
                                std::make_integer_sequence<int, rules::RuleInfo<Family>::n_slots>{});
}

}  // namespace cpu
FUSEDOPT_NAMESPACE_END
