// CPU driver for the random fills: one OpenMP region over the output's Philox blocks. Every
// element depends on (seed, stream, index) only, so any split over threads gives the same bits.
#pragma once
#include "../rules/init.hpp"
#include "tensor_list.hpp"

namespace fusedopt {
enum class OutKind : int { Float32 = 0, Float64 = 1, Float16 = 2, BFloat16 = 3 };
}  // namespace fusedopt

FUSEDOPT_NAMESPACE_BEGIN
namespace cpu {

template <OutKind K> struct OutType;
template <> struct OutType<OutKind::Float32> { using type = float; using math = float; };
template <> struct OutType<OutKind::Float64> { using type = double; using math = double; };
template <> struct OutType<OutKind::Float16> { using type = unsigned short; using math = float; };
template <> struct OutType<OutKind::BFloat16> { using type = unsigned short; using math = float; };

template <OutKind K, typename M>
inline typename OutType<K>::type convert_out(M x) {
  if constexpr (K == OutKind::Float16) return rules::to_float16_bits(x);
  else if constexpr (K == OutKind::BFloat16) return rules::to_bfloat16_bits(x);
  else return x;
}

template <OutKind K>
void init_fill(const TensorListView& list, const InitHyper& h) {
  using Out = typename OutType<K>::type;
  using M = typename OutType<K>::math;
  constexpr int64_t per_block = rules::PerBlock<M>::value;
  for_each_range(list, [&](int64_t t, int64_t begin, int64_t end) {
    Out* out = slot<Out>(list, 0, t);
    const int64_t first_full = (begin + per_block - 1) / per_block;  // blocks wholly inside [begin, end)
    const int64_t last_full = end / per_block;
    auto partial = [&](int64_t block) {  // a block cut by the range: keep its elements inside
      M v[4];
      rules::init_block<M>(h, static_cast<unsigned long long>(block), v);
      for (int64_t j = 0; j < per_block; ++j) {
        const int64_t i = block * per_block + j;
        if (i >= begin && i < end) out[i] = convert_out<K>(v[j]);
      }
    };
    if (first_full > last_full) {  // the whole range sits inside one block
      partial(begin / per_block);
      return;
    }
    if (begin % per_block) partial(begin / per_block);
#pragma omp simd
    for (int64_t block = first_full; block < last_full; ++block) {
      M v[4];
      rules::init_block<M>(h, static_cast<unsigned long long>(block), v);
      for (int64_t j = 0; j < per_block; ++j) out[block * per_block + j] = convert_out<K>(v[j]);
    }
    if (end % per_block) partial(last_full);
  });
}

}  // namespace cpu
FUSEDOPT_NAMESPACE_END
