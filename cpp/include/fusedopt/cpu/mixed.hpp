// The CPU driver for steps whose arrays are stored in 16-bit types (bfloat16, float16), in any mix with
// float32 per list, the math in float32 (README, "Mixed precision"). Each thread's share is walked
// in blocks of kStage elements: the 16-bit lists of a block are converted into float32 buffers on the
// stack (float32 lists are used in place), the rule's element runs over the block as in apply.hpp, and
// the lists the rule writes are rounded back. One pass over memory; the buffers stay in L1. The AVX-512
// build takes the common layouts another way, through registers (mixed_avx512.hpp).
//
// With a master copy, the param is read from and written to its float32 copy, and the 16-bit param is
// only written: the copy rounded to nearest. Stochastic rounding (bfloat16 only) takes its bits from
// Philox keyed by (seed, step, tensor id, element index), so the result never depends on the threads.
#pragma once
#include <utility>
#include <vector>

#include "../philox.hpp"
#include "../rules/storage.hpp"
#include "apply.hpp"
#include "convert.hpp"
#include "philox_lanes.hpp"

namespace fusedopt {
// The storage types of arrays; the first two are also the math types of the one-type kernels.
enum DType : int { kFloat32 = 0, kFloat64 = 1, kBFloat16 = 2, kFloat16 = 3 };

// How a mixed step stores its lists (plain data: crosses from the binding into each ISA build).
struct MixedStorage {
  unsigned char type[kMaxSlots];  // DType of each list of the view (kFloat32, kBFloat16 or kFloat16)
  void* const* master;            // per tensor, a float32 copy of the param; nullptr: none
  int stochastic;                 // bfloat16 writes (but a param with a master copy) round stochastically
  unsigned long long seed;        // Philox key of the rounding bits
  unsigned long long step;        // counter word 2
  const int64_t* tensor_ids;      // counter word 3, per tensor (the param's index in its optimizer)
};

// Philox key word 1 of the rounding bits is the seed's high half xor this, so that they are not the
// bits an initializer with the same seed draws.
constexpr unsigned int kRoundingKeyDomain = 0x534e4452u;
}  // namespace fusedopt

FUSEDOPT_NAMESPACE_BEGIN
namespace cpu {

constexpr int64_t kStage = 256;  // elements per block: the float buffers and the random bits fit in L1

template <DType D> struct Stored;
template <> struct Stored<kFloat32> {
  using type = float;
  static float load(float x) { return x; }
};
template <> struct Stored<kFloat64> {
  using type = double;
  static double load(double x) { return x; }
};
template <> struct Stored<kBFloat16> {
  using type = unsigned short;
  static float load(unsigned short x) { return rules::bfloat16_to_float(x); }
};
template <> struct Stored<kFloat16> {
  using type = unsigned short;
  static float load(unsigned short x) { return rules::float16_to_float(x); }
};

inline void load_block(int type, const void* base, int64_t begin, int64_t n, float* out) {
  const auto* in = static_cast<const unsigned short*>(base) + begin;
  if (type == kBFloat16) bfloat16_to_float_block(in, out, n);
  else float16_to_float_block(in, out, n);
}

// random: nullptr to round to nearest, else 32 bits per element of which bits [shift, shift + 16) are used.
inline void store_block(int type, void* base, int64_t begin, int64_t n, const float* in, const unsigned int* random,
                        int shift) {
  auto* out = static_cast<unsigned short*>(base) + begin;
  if (type == kFloat16) {
    float_to_float16_block(in, out, n);
  } else if (random == nullptr) {
    float_to_bfloat16_block(in, out, n);
  } else {
    float_to_bfloat16_stochastic_block(in, random, shift, out, n);
  }
}

// 64 rounding bits for each element [begin, begin + n) of tensor t (n <= kStage): element i takes words
// 2(i mod 2) and 2(i mod 2) + 1 of the Philox block with counter (i/2 mod 2^32, i/2 div 2^32, step, tensor
// id), key (seed mod 2^32, seed div 2^32 xor kRoundingKeyDomain). Element j of the range is at
// low/high[j + begin mod 2].
inline void rounding_bits(const MixedStorage& m, int64_t t, int64_t begin, int64_t n, unsigned int* low,
                          unsigned int* high) {
  const int64_t first = begin >> 1, pairs = ((begin + n + 1) >> 1) - first;
  const auto k0 = static_cast<unsigned int>(m.seed), k1 = static_cast<unsigned int>(m.seed >> 32) ^ kRoundingKeyDomain;
  const auto c2 = static_cast<unsigned int>(m.step), c3 = static_cast<unsigned int>(m.tensor_ids[t]);
  alignas(64) unsigned int w[4][kStage / 2 + 1];
  unsigned int* const words[4] = {w[0], w[1], w[2], w[3]};
  const int64_t made = philox_blocks(static_cast<unsigned long long>(first), pairs, c2, c3, k0, k1, words);
  for (int64_t q = made; q < pairs; ++q) {
    const auto pair = static_cast<unsigned long long>(first + q);
    const PhiloxBlock b = philox4x32_10(static_cast<unsigned int>(pair), static_cast<unsigned int>(pair >> 32), c2, c3,
                                        k0, k1);
    for (int k = 0; k < 4; ++k) w[k][q] = b.v[k];
  }
#pragma omp simd
  for (int64_t q = 0; q < pairs; ++q) {
    low[2 * q] = w[0][q];
    high[2 * q] = w[1][q];
    low[2 * q + 1] = w[2][q];
    high[2 * q + 1] = w[3][q];
  }
}

// One block [b, b + n) of tensor t: its lists as float pointers (staged or in place), and writing back.
template <class Rule>
struct StagedBlock {
  alignas(64) float buffer[kMaxSlots][kStage];
  alignas(64) unsigned int low[kStage + 2], high[kStage + 2];
  float* at[kMaxSlots] = {};

  static int list_of(int k) { return rules::list_index(Rule::present, k); }

  // Float32 lists are used in place, but those in `copied` (slot bits), which go to the buffers too.
  void load(const TensorListView& list, const MixedStorage& m, int64_t t, int64_t b, int64_t n, unsigned copied = 0u) {
    for (int k = 0; k < kMaxSlots; ++k) {
      if (!((Rule::present >> k) & 1u)) continue;
      const int l = list_of(k);
      if (k == 0 && m.master != nullptr) {
        at[k] = static_cast<float*>(m.master[t]) + b;
      } else if (m.type[l] == kFloat32 && ((copied >> k) & 1u)) {
        const float* in = slot<float>(list, l, t) + b;
        for (int64_t j = 0; j < n; ++j) buffer[k][j] = in[j];
        at[k] = buffer[k];
      } else if (m.type[l] == kFloat32) {
        at[k] = slot<float>(list, l, t) + b;
      } else {
        load_block(m.type[l], list.slots[l][t], b, n, buffer[k]);
        at[k] = buffer[k];
      }
    }
  }

  // Rounds back the 16-bit lists among `written` (slot bits); float32 lists were updated in place.
  void store(const TensorListView& list, const MixedStorage& m, int64_t t, int64_t b, int64_t n, unsigned written) {
    bool random_drawn = false;
    for (int k = 0; k < kMaxSlots; ++k) {
      if (!((written >> k) & 1u)) continue;
      const int l = list_of(k);
      if (m.type[l] == kFloat32) continue;
      const bool from_master = k == 0 && m.master != nullptr;
      const unsigned int* random = nullptr;
      if (m.stochastic && m.type[l] == kBFloat16 && !from_master) {
        if (!random_drawn) rounding_bits(m, t, b, n, low, high);
        random_drawn = true;
        const int field = k == 0 ? 0 : k - 1;  // param, then state slots 2, 3, 4: 16 bits each
        random = (field < 2 ? low : high) + (b & 1);
        store_block(m.type[l], list.slots[l][t], b, n, at[k], random, 16 * (field & 1));
      } else {
        store_block(m.type[l], list.slots[l][t], b, n, at[k], nullptr, 0);
      }
    }
  }

  template <int K>
  auto pointer() {
    if constexpr ((Rule::present >> K) & 1u) return at[K];
    else return static_cast<Absent*>(nullptr);
  }
};

template <class Rule>
constexpr unsigned kWritten = Rule::present & ~0b10u;  // every slot but the grad

// The state a rule's first pass writes (LAMB's moments), computed again over a block without the norms:
// the 16-bit path does not store the first pass's state, so that the second pass starts from the
// unrounded values, as the float32 path does (rounding the moments in between would change the update).
template <class Rule, typename... P>
inline void redo_first_pass_state(int64_t n, const typename Rule::template Scalars<float>& s, P*... p) {
  simd_for(0, n, [&](int64_t i) __attribute__((always_inline)) {
    float unused = 0.0f, a, b;
    Rule::norm_terms(at<float>(p, i, unused)..., s, a, b);
  });
}

// Two passes, as apply_with_norms: the first reads the block and sums the norms (writing nothing), the
// second redoes the first pass's state, applies the update and writes every written list once.
template <class Rule, int... K>
void apply_mixed_with_norms(const TensorListView& list, const MixedStorage& m,
                            const typename Rule::template Scalars<float>& s) {
  constexpr int N = rules::NormCount<Rule>::value;
  constexpr unsigned first_writes = Rule::first_pass_writes;
  const int64_t n_tensors = list.n_tensors;
  std::vector<float> factor(static_cast<size_t>(n_tensors), 1.0f);
  if constexpr (N > 0) {
    const NormChunks chunks(list);
    std::vector<double> partial(static_cast<size_t>(chunks.count()) * N);
    chunks.for_each(list, [&](int64_t c, int64_t t, int64_t begin, int64_t end) {
      StagedBlock<Rule> block;
      double lane0[kNormLanes] = {}, lane1[kNormLanes] = {};
      for (int64_t b = begin; b < end; b += kStage) {
        const int64_t n = end - b < kStage ? end - b : kStage;
        block.load(list, m, t, b, n, first_writes);  // the first pass's writes stay in the buffers
        norm_lanes<Rule, float>(0, n, s, lane0, lane1, block.template pointer<K>()...);
      }
      sum_lanes(lane0, lane1, &partial[static_cast<size_t>(c) * N]);
    });
    for (int64_t t = 0; t < n_tensors; ++t) factor[t] = static_cast<float>(chunks.tensor_factor<Rule, N>(t, partial, s));
  }
  for_each_range(list, [&](int64_t t, int64_t begin, int64_t end) {
    StagedBlock<Rule> block;
    for (int64_t b = begin; b < end; b += kStage) {
      const int64_t n = end - b < kStage ? end - b : kStage;
      block.load(list, m, t, b, n);
      if constexpr (first_writes != 0u) redo_first_pass_state<Rule>(n, s, block.template pointer<K>()...);
      update_range_scaled<Rule, float, false>(0, n, s, factor[t], block.template pointer<K>()...);
      block.store(list, m, t, b, n, kWritten<Rule>);
    }
  });
}

}  // namespace cpu
FUSEDOPT_NAMESPACE_END

#include "mixed_avx512.hpp"

FUSEDOPT_NAMESPACE_BEGIN
namespace cpu {

// The fast layouts (mixed_avx512.hpp) of an elementwise rule rounding to nearest: params and grads in
// one 16-bit type, every state list in it or in float32 (float32 with a master copy). True when it ran.
template <class Rule, int... K>
bool run_fast_layout(const TensorListView& list, const MixedStorage& m, const void* scalars) {
#if defined(__AVX512F__)
  if constexpr (rules::NormCount<Rule>::value < 0) {
    constexpr int n_lists = rules::popcount(Rule::present);
    const int p = m.type[0];
    if (m.stochastic || (p != kBFloat16 && p != kFloat16) || m.type[1] != p) return false;
    const int s = n_lists > 2 ? m.type[2] : kFloat32;
    for (int l = 2; l < n_lists; ++l)
      if (m.type[l] != s) return false;
    const bool master = m.master != nullptr;
    if ((s != p && s != kFloat32) || (master && s != kFloat32)) return false;
    if (p == kFloat16) {
      if (master) run_fast<Rule, false, kFloat16, kFloat32, true, K...>(list, m, scalars);
      else if (s == kFloat32) run_fast<Rule, false, kFloat16, kFloat32, false, K...>(list, m, scalars);
      else run_fast<Rule, false, kFloat16, kFloat16, false, K...>(list, m, scalars);
    } else if (has_avx512_bf16()) {
      if (master) run_fast<Rule, true, kBFloat16, kFloat32, true, K...>(list, m, scalars);
      else if (s == kFloat32) run_fast<Rule, true, kBFloat16, kFloat32, false, K...>(list, m, scalars);
      else run_fast<Rule, true, kBFloat16, kBFloat16, false, K...>(list, m, scalars);
    } else {
      if (master) run_fast<Rule, false, kBFloat16, kFloat32, true, K...>(list, m, scalars);
      else if (s == kFloat32) run_fast<Rule, false, kBFloat16, kFloat32, false, K...>(list, m, scalars);
      else run_fast<Rule, false, kBFloat16, kBFloat16, false, K...>(list, m, scalars);
    }
    return true;
  }
#endif
  return false;
}

template <class Rule, int... K>
void apply_mixed_slots(const TensorListView& list, const MixedStorage& m, const void* scalars,
                       std::integer_sequence<int, K...>) {
  if (run_fast_layout<Rule, K...>(list, m, scalars)) return;
  const auto s = *static_cast<const typename Rule::template Scalars<float>*>(scalars);
  if constexpr (rules::NormCount<Rule>::value >= 0) {
    apply_mixed_with_norms<Rule, K...>(list, m, s);
  } else {
    for_each_range(list, [&](int64_t t, int64_t begin, int64_t end) {
      StagedBlock<Rule> block;
      for (int64_t b = begin; b < end; b += kStage) {
        const int64_t n = end - b < kStage ? end - b : kStage;
        block.load(list, m, t, b, n);
        update_range<Rule, float, false>(0, n, s, block.template pointer<K>()...);
        block.store(list, m, t, b, n, kWritten<Rule>);
      }
    });
  }
}

// One step of a rule variant over lists stored as m says, in float32; scalars: its Scalars<float>.
template <template <unsigned> class Family, unsigned Flags>
void apply_mixed(const TensorListView& list, const MixedStorage& m, const void* scalars) {
  apply_mixed_slots<Family<Flags>>(list, m, scalars,
                                   std::make_integer_sequence<int, rules::RuleInfo<Family>::n_slots>{});
}

}  // namespace cpu
FUSEDOPT_NAMESPACE_END
