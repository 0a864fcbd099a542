// Philox4x32-10 (philox.hpp) for many consecutive counters at once, in SIMD lanes on every x86 ISA:
// each 64-bit lane holds one 32-bit word, so a round's 32×32→64 multiply is one instruction (PMULUDQ,
// 8 lanes in AVX-512, 4 in AVX2, 2 in SSE2) and its high half one shift. The bits are philox.hpp's.
// (Left to itself, GCC widened the words to 64-bit multiplies with shuffles around them.)
#pragma once
#include <cstdint>

#include "../philox.hpp"

#if defined(__SSE2__)
#include <immintrin.h>
#endif

FUSEDOPT_NAMESPACE_BEGIN
namespace cpu {

#if defined(__AVX512F__)
struct PhiloxLanes {
  using V = __m512i;
  static constexpr int width = 8;
  static V set(unsigned long long x) { return _mm512_set1_epi64(static_cast<long long>(x)); }
  static V lane_index() { return _mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7); }
  static V add(V a, V b) { return _mm512_add_epi64(a, b); }
  static V multiply(V a, V b) { return _mm512_mul_epu32(a, b); }  // low words' full products
  static V high(V a) { return _mm512_srli_epi64(a, 32); }
  static V xor3(V a, V b, V c) { return _mm512_ternarylogic_epi64(a, b, c, 0x96); }
  static void store_low_words(unsigned int* out, V a) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), _mm512_cvtepi64_epi32(a));
  }
};
#elif defined(__AVX2__)
struct PhiloxLanes {
  using V = __m256i;
  static constexpr int width = 4;
  static V set(unsigned long long x) { return _mm256_set1_epi64x(static_cast<long long>(x)); }
  static V lane_index() { return _mm256_setr_epi64x(0, 1, 2, 3); }
  static V add(V a, V b) { return _mm256_add_epi64(a, b); }
  static V multiply(V a, V b) { return _mm256_mul_epu32(a, b); }
  static V high(V a) { return _mm256_srli_epi64(a, 32); }
  static V xor3(V a, V b, V c) { return _mm256_xor_si256(_mm256_xor_si256(a, b), c); }
  static void store_low_words(unsigned int* out, V a) {
    const __m256i even = _mm256_permutevar8x32_epi32(a, _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out), _mm256_castsi256_si128(even));
  }
};
#elif defined(__SSE2__)
struct PhiloxLanes {
  using V = __m128i;
  static constexpr int width = 2;
  static V set(unsigned long long x) { return _mm_set1_epi64x(static_cast<long long>(x)); }
  static V lane_index() { return _mm_set_epi64x(1, 0); }
  static V add(V a, V b) { return _mm_add_epi64(a, b); }
  static V multiply(V a, V b) { return _mm_mul_epu32(a, b); }
  static V high(V a) { return _mm_srli_epi64(a, 32); }
  static V xor3(V a, V b, V c) { return _mm_xor_si128(_mm_xor_si128(a, b), c); }
  static void store_low_words(unsigned int* out, V a) {
    _mm_storel_epi64(reinterpret_cast<__m128i*>(out), _mm_shuffle_epi32(a, _MM_SHUFFLE(3, 1, 2, 0)));
  }
};
#endif

// The blocks of counters (first + j as its low and high word, c2, c3) under key (k0, k1), for j in
// [0, n): word k of block j goes to words[k][j]. Returns how many it made (a multiple of the lanes
// in flight); the caller makes the rest with philox4x32_10.
inline int64_t philox_blocks(unsigned long long first, int64_t n, unsigned int c2, unsigned int c3, unsigned int k0,
                             unsigned int k1, unsigned int* const words[4]) {
#if defined(__SSE2__)
  using L = PhiloxLanes;
  using V = L::V;
  constexpr int kGroups = 4;  // independent vectors per iteration: the rounds are a chain of multiplies
  constexpr int64_t kStep = int64_t(kGroups) * L::width;
  V key0[10], key1[10];
  for (int round = 0; round < 10; ++round) {
    key0[round] = L::set(k0 + static_cast<unsigned int>(round) * 0x9E3779B9u);
    key1[round] = L::set(k1 + static_cast<unsigned int>(round) * 0xBB67AE85u);
  }
  const V m0 = L::set(0xD2511F53u), m1 = L::set(0xCD9E8D57u);
  const V x2 = L::set(c2), x3 = L::set(c3);
  int64_t j = 0;
  for (; j + kStep <= n; j += kStep) {
    // Only a lane's low word matters: the multiply reads only low words, and the xors keep the halves
    // apart, so what the high halves carry along is never read.
    V w0[kGroups], w1[kGroups], w2[kGroups], w3[kGroups];
    for (int g = 0; g < kGroups; ++g) {
      const V counter = L::add(L::set(first + static_cast<unsigned long long>(j + g * L::width)), L::lane_index());
      w0[g] = counter;
      w1[g] = L::high(counter);
      w2[g] = x2;
      w3[g] = x3;
    }
    for (int round = 0; round < 10; ++round) {
      for (int g = 0; g < kGroups; ++g) {
        const V p0 = L::multiply(w0[g], m0), p1 = L::multiply(w2[g], m1);
        w0[g] = L::xor3(L::high(p1), w1[g], key0[round]);
        w1[g] = p1;
        w2[g] = L::xor3(L::high(p0), w3[g], key1[round]);
        w3[g] = p0;
      }
    }
    for (int g = 0; g < kGroups; ++g) {
      const int64_t at = j + g * L::width;
      L::store_low_words(words[0] + at, w0[g]);
      L::store_low_words(words[1] + at, w1[g]);
      L::store_low_words(words[2] + at, w2[g]);
      L::store_low_words(words[3] + at, w3[g]);
    }
  }
  return j;
#else
  (void)first, (void)n, (void)c2, (void)c3, (void)k0, (void)k1, (void)words;
  return 0;
#endif
}

}  // namespace cpu
FUSEDOPT_NAMESPACE_END
