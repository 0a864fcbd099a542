// CPU driver for the random fills: one parallel job over the output's Philox blocks. Every
// element depends on (seed, stream, index) only, so any split over threads gives the same bits.
#pragma once
#include "../rules/init.hpp"
#include "philox_lanes.hpp"
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

// One distribution over the blocks [first, last) of a range: Philox for a tile of blocks in SIMD lanes
// (philox_lanes.hpp), then the distribution and the stores in a SIMD loop.
template <OutKind K, Distribution D>
void fill_blocks(typename OutType<K>::type* out, int64_t first, int64_t last, const InitHyper& h) {
  using M = typename OutType<K>::math;
  constexpr int per_block = rules::PerBlock<M>::value;
  constexpr int64_t kTile = 256;
  alignas(64) unsigned int w[4][kTile];
  using Out = typename OutType<K>::type;
  for (int64_t tile = first; tile < last; tile += kTile) {
    const int64_t n = last - tile < kTile ? last - tile : kTile;
    Out* dst = out + tile * per_block;
    unsigned int* const words[4] = {w[0], w[1], w[2], w[3]};
    const int64_t made = philox_blocks(static_cast<unsigned long long>(tile), n, static_cast<unsigned int>(h.stream),
                                       static_cast<unsigned int>(h.stream >> 32), static_cast<unsigned int>(h.seed),
                                       static_cast<unsigned int>(h.seed >> 32), words);
    for (int64_t j = made; j < n; ++j) {
      const PhiloxBlock r = rules::init_philox<M>(h, static_cast<unsigned long long>(tile + j));
      w[0][j] = r.v[0];
      w[1][j] = r.v[1];
      w[2][j] = r.v[2];
      w[3][j] = r.v[3];
    }
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) {
      // scalars, not a u[4] array: GCC does not vectorize per-iteration arrays
      M u0, u1, u2 = M(0), u3 = M(0);
      if constexpr (per_block == 4) {
        u0 = M(rules::unit_float(w[0][j]));
        u1 = M(rules::unit_float(w[1][j]));
        u2 = M(rules::unit_float(w[2][j]));
        u3 = M(rules::unit_float(w[3][j]));
      } else {
        u0 = M(rules::unit_double(w[0][j], w[1][j]));
        u1 = M(rules::unit_double(w[2][j], w[3][j]));
      }
      M x0, x1, x2 = M(0), x3 = M(0);
      if constexpr (D == Distribution::Uniform) {
        x0 = rules::uniform_value(u0, h);
        x1 = rules::uniform_value(u1, h);
        if constexpr (per_block == 4) {
          x2 = rules::uniform_value(u2, h);
          x3 = rules::uniform_value(u3, h);
        }
      } else if constexpr (D == Distribution::Normal) {
        rules::normal_pair(u0, u1, h, x0, x1);
        if constexpr (per_block == 4) rules::normal_pair(u2, u3, h, x2, x3);
      } else {
        x0 = rules::truncated_value(u0, h);
        x1 = rules::truncated_value(u1, h);
        if constexpr (per_block == 4) {
          x2 = rules::truncated_value(u2, h);
          x3 = rules::truncated_value(u3, h);
        }
      }
      dst[j * per_block] = convert_out<K>(x0);
      dst[j * per_block + 1] = convert_out<K>(x1);
      if constexpr (per_block == 4) {
        dst[j * per_block + 2] = convert_out<K>(x2);
        dst[j * per_block + 3] = convert_out<K>(x3);
      }
    }
  }
}

template <OutKind K>
void init_fill(const TensorListView& list, const InitHyper& h) {
  using Out = typename OutType<K>::type;
  using M = typename OutType<K>::math;
  constexpr int64_t per_block = rules::PerBlock<M>::value;
  for_each_range(list, [&](int64_t t, int64_t begin, int64_t end) {
    Out* out = slot<Out>(list, 0, t);
    auto partial = [&](int64_t block) {  // a block cut by the range: keep its elements inside
      M v[4];
      rules::init_block<M>(h, static_cast<unsigned long long>(block), v);
      for (int64_t j = 0; j < per_block; ++j) {
        const int64_t i = block * per_block + j;
        if (i >= begin && i < end) out[i] = convert_out<K>(v[j]);
      }
    };
    const int64_t first_full = (begin + per_block - 1) / per_block;  // blocks wholly inside [begin, end)
    const int64_t last_full = end / per_block;
    if (first_full > last_full) {  // the whole range sits inside one block
      partial(begin / per_block);
      return;
    }
    if (begin % per_block) partial(begin / per_block);
    switch (h.distribution) {
      case Distribution::Uniform: fill_blocks<K, Distribution::Uniform>(out, first_full, last_full, h); break;
      case Distribution::Normal: fill_blocks<K, Distribution::Normal>(out, first_full, last_full, h); break;
      case Distribution::TruncatedNormal:
        fill_blocks<K, Distribution::TruncatedNormal>(out, first_full, last_full, h);
        break;
    }
    if (end % per_block) partial(last_full);
  });
}

}  // namespace cpu
FUSEDOPT_NAMESPACE_END
