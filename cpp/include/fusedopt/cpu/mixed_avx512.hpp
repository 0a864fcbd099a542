// The AVX-512 build's fast path for the common 16-bit layouts of an elementwise rule, rounding to
// nearest (cpu/mixed.hpp takes everything else): params and grads in one 16-bit type P, state in P or in
// float32, with or without a float32 master copy. The layout is a template parameter, so each block of
// 16 elements is converted into registers and back with a few instructions, and the rule's element runs
// on them as in apply.hpp: no staging buffers. Where the CPU has AVX512_BF16, bfloat16 stores use
// VCVTNEPS2BF16 (with the generic rounding for a vector holding a float32 denormal, which it would flush);
// the bits are those of rules/storage.hpp either way.
#pragma once
#if defined(__AVX512F__)
#include <immintrin.h>

#include "mixed.hpp"

FUSEDOPT_NAMESPACE_BEGIN
namespace cpu {

// Each type's 16-lane load and store; store<true> may use VCVTNEPS2BF16, which the caller has checked
// is safe for v (native_unsafe: the lanes it would get wrong, float32 denormals, which it flushes).
template <int D> struct Lanes16;
template <> struct Lanes16<kFloat32> {
  static __m512 load(const void* p, int64_t i) { return _mm512_loadu_ps(static_cast<const float*>(p) + i); }
  static __mmask16 native_unsafe(__m512) { return 0; }
  template <bool Native>
  static void store(void* p, int64_t i, __m512 v) { _mm512_storeu_ps(static_cast<float*>(p) + i, v); }
};
template <> struct Lanes16<kBFloat16> {
  static __m512 load(const void* p, int64_t i) {
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const unsigned short*>(p) + i));
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
  static __m256i nearest(__m512 v) {  // rules::to_bfloat16_bits on 16 lanes
    const __m512i x = _mm512_castps_si512(v);
    __m512i r = _mm512_add_epi32(x, _mm512_add_epi32(_mm512_set1_epi32(0x7fff),
                                                     _mm512_and_si512(_mm512_srli_epi32(x, 16), _mm512_set1_epi32(1))));
    r = _mm512_mask_or_epi32(r, _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), x, _mm512_set1_epi32(0x400000));
    return _mm512_cvtepi32_epi16(_mm512_srli_epi32(r, 16));
  }
  static __mmask16 native_unsafe(__m512 v) {  // the float32 denormals
    const __m512i x = _mm512_castps_si512(v);
    return _mm512_mask_test_epi32_mask(_mm512_testn_epi32_mask(x, _mm512_set1_epi32(0x7f800000)), x,
                                       _mm512_set1_epi32(0x007fffff));
  }
  template <bool Native>
  static void store(void* p, int64_t i, __m512 v) {
    __m256i h;
    if constexpr (Native) {
      // VCVTNEPS2BF16 by inline assembly: this build does not assume AVX512_BF16, the caller checked it
      asm("vcvtneps2bf16 %1, %0" : "=v"(h) : "v"(v));
    } else {
      h = nearest(v);
    }
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(static_cast<unsigned short*>(p) + i), h);
  }
};
template <> struct Lanes16<kFloat16> {
  static __m512 load(const void* p, int64_t i) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const unsigned short*>(p) + i)));
  }
  static __mmask16 native_unsafe(__m512) { return 0; }
  template <bool Native>
  static void store(void* p, int64_t i, __m512 v) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(static_cast<unsigned short*>(p) + i),
                        _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  }
};

// The storage of slot K under layout (P, S, Master): the param P (its float32 copy with Master), the
// grad P, the state S.
template <int K, int P, int S, bool Master>
constexpr int slot_type() { return K == 0 ? (Master ? kFloat32 : P) : K == 1 ? P : S; }

template <class Rule, int P, int S, bool Master, bool Native, int... K>
struct FastLayout {
  using Scalars = typename Rule::template Scalars<float>;

  static void* base(const TensorListView& list, const MixedStorage& m, int k, int64_t t) {
    if (k == 0 && Master) return m.master[t];
    return list.slots[rules::list_index(Rule::present, k)][t];
  }

  // Elements [begin, end) of tensor t, a multiple of 16 of them from begin; returns where it stopped.
  static int64_t range(const TensorListView& list, const MixedStorage& m, const Scalars& scalars, int64_t t,
                       int64_t begin, int64_t end) {
    const Scalars s = scalars;  // kept in registers (see update_range): the __m256i stores alias anything
    void* at[kMaxSlots] = {};
    ((at[K] = ((Rule::present >> K) & 1u) ? base(list, m, K, t) : nullptr), ...);
    void* const param = list.slots[0][t];
    int64_t i = begin;
    for (; i + 16 <= end; i += 16) {
      alignas(64) float x[kMaxSlots][16];
      ((((Rule::present >> K) & 1u) ? _mm512_store_ps(x[K], Lanes16<slot_type<K, P, S, Master>()>::load(at[K], i))
                                    : void()),
       ...);
      update_range<Rule, float, false>(0, 16, s, row<K>(x)...);
      if constexpr (Native) {  // one check of the block's written vectors, then all stores one way
        __mmask16 unsafe = 0;
        ((unsafe |= ((kWritten<Rule> >> K) & 1u)
                        ? Lanes16<slot_type<K, P, S, Master>()>::native_unsafe(_mm512_load_ps(x[K]))
                        : __mmask16(0)),
         ...);
        if constexpr (Master) unsafe |= Lanes16<P>::native_unsafe(_mm512_load_ps(x[0]));
        if (unsafe == 0) store_block<true>(at, param, i, x);
        else store_block<false>(at, param, i, x);
      } else {
        store_block<false>(at, param, i, x);
      }
    }
    return i;
  }

  template <bool UseNative>
  static void store_block(void* const (&at)[kMaxSlots], void* param, int64_t i, float (&x)[kMaxSlots][16]) {
    ((((kWritten<Rule> >> K) & 1u) ? Lanes16<slot_type<K, P, S, Master>()>::template store<UseNative>(
                                         at[K], i, _mm512_load_ps(x[K]))
                                   : void()),
     ...);
    if constexpr (Master) Lanes16<P>::template store<UseNative>(param, i, _mm512_load_ps(x[0]));
  }

  template <int J>
  static auto row(float (&x)[kMaxSlots][16]) {
    if constexpr ((Rule::present >> J) & 1u) return x[J];
    else return static_cast<Absent*>(nullptr);
  }
};

// One step over a fast layout; the elements past the last whole 16 of each range go the staged way.
template <class Rule, bool Native, int P, int S, bool Master, int... K>
void run_fast(const TensorListView& list, const MixedStorage& m, const void* scalars) {
  const auto s = *static_cast<const typename Rule::template Scalars<float>*>(scalars);
  for_each_range(list, [&](int64_t t, int64_t begin, int64_t end) {
    const int64_t done = FastLayout<Rule, P, S, Master, Native, K...>::range(list, m, s, t, begin, end);
    if (done < end) {  // the last few elements: the staged path
      StagedBlock<Rule> block;
      block.load(list, m, t, done, end - done);
      update_range<Rule, float, false>(0, end - done, s, block.template pointer<K>()...);
      block.store(list, m, t, done, end - done, kWritten<Rule>);
    }
  });
}

}  // namespace cpu
FUSEDOPT_NAMESPACE_END
#endif
