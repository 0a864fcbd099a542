// Block conversions between the 16-bit storage types and float32 (rules/storage.hpp gives the bits).
// The generic loops are what every ISA build compiles; GCC vectorizes them poorly (the 16-bit packing
// and the selects cost about 3 times the arithmetic of an Adam step), so the AVX-512 build converts 16
// values per instruction sequence instead: VPMOVZXWD and a shift for bfloat16 loads, the same
// round-to-nearest-even on 32-bit lanes and VPMOVDW for its stores, F16C's VCVTPH2PS/VCVTPS2PH for
// float16. Where the CPU has AVX512_BF16 (checked at run time), bfloat16 stores use its VCVTNEPS2BF16,
// which rounds to nearest even but flushes float32 denormals to zero: a vector holding a denormal takes
// the generic path instead. They all give the generic functions' bits, NaNs included
// (tests/test_mixed_precision.py checks every 16-bit pattern and float32 edge cases on every ISA).
#pragma once
#include <cstdint>

#include "../rules/storage.hpp"

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace fusedopt {
// Whether bfloat16 stores may use VCVTNEPS2BF16: the CPU has AVX512_BF16 and FUSEDOPT_NO_AVX512_BF16
// is not set (the tests set it to run the other path). Defined in cpp/src/isa.cpp.
bool use_avx512_bf16();
}  // namespace fusedopt

FUSEDOPT_NAMESPACE_BEGIN
namespace cpu {

inline void bfloat16_to_float_block(const unsigned short* in, float* out, int64_t n) {
  int64_t j = 0;
#if defined(__AVX512F__)
  for (; j + 16 <= n; j += 16) {
    const __m512i wide = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(in + j)));
    _mm512_storeu_ps(out + j, _mm512_castsi512_ps(_mm512_slli_epi32(wide, 16)));
  }
#endif
#pragma omp simd
  for (int64_t i = j; i < n; ++i) out[i] = rules::bfloat16_to_float(in[i]);
}

inline void float16_to_float_block(const unsigned short* in, float* out, int64_t n) {
  int64_t j = 0;
#if defined(__AVX512F__)
  for (; j + 16 <= n; j += 16)
    _mm512_storeu_ps(out + j, _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(in + j))));
#endif
#pragma omp simd
  for (int64_t i = j; i < n; ++i) out[i] = rules::float16_to_float(in[i]);
}

#if defined(__AVX512F__)
// The vectors of 16 up to n that hold no denormal, through VCVTNEPS2BF16; returns where it stopped (the
// first vector with a denormal, or the last whole vector's end).
__attribute__((target("avx512bf16,avx512f,avx512vl"))) inline int64_t float_to_bfloat16_native(
    const float* in, unsigned short* out, int64_t n) {
  const __m512i exponent = _mm512_set1_epi32(0x7f800000), mantissa = _mm512_set1_epi32(0x007fffff);
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) {
    const __m512 v = _mm512_loadu_ps(in + j);
    const __m512i x = _mm512_castps_si512(v);
    if (_mm512_mask_test_epi32_mask(_mm512_testn_epi32_mask(x, exponent), x, mantissa) != 0) break;
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + j), reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(v)));
  }
  return j;
}

inline bool has_avx512_bf16() { return use_avx512_bf16(); }
#endif

inline void float_to_bfloat16_block(const float* in, unsigned short* out, int64_t n) {
  int64_t j = 0;
#if defined(__AVX512F__)
  if (has_avx512_bf16()) j = float_to_bfloat16_native(in, out, n);
  const __m512i one = _mm512_set1_epi32(1), half = _mm512_set1_epi32(0x7fff), quiet = _mm512_set1_epi32(0x400000);
  for (; j + 16 <= n; j += 16) {
    const __m512 v = _mm512_loadu_ps(in + j);
    const __m512i x = _mm512_castps_si512(v);
    __m512i r = _mm512_add_epi32(x, _mm512_add_epi32(half, _mm512_and_si512(_mm512_srli_epi32(x, 16), one)));
    r = _mm512_mask_or_epi32(r, _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), x, quiet);  // NaN: (x >> 16) | 0x40
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + j), _mm512_cvtepi32_epi16(_mm512_srli_epi32(r, 16)));
  }
#endif
#pragma omp simd
  for (int64_t i = j; i < n; ++i) out[i] = rules::to_bfloat16_bits(in[i]);
}

// Stochastic rounding: element j takes bits [shift, shift + 16) of random[j] (rules::to_bfloat16_bits_stochastic).
inline void float_to_bfloat16_stochastic_block(const float* in, const unsigned int* random, int shift,
                                               unsigned short* out, int64_t n) {
  int64_t j = 0;
#if defined(__AVX512F__)
  const __m512i field = _mm512_set1_epi32(0xffff), quiet = _mm512_set1_epi32(0x400000);
  const __m128i count = _mm_cvtsi32_si128(shift);
  for (; j + 16 <= n; j += 16) {
    const __m512 v = _mm512_loadu_ps(in + j);
    const __m512i x = _mm512_castps_si512(v);
    const __m512i bits = _mm512_and_si512(_mm512_srl_epi32(_mm512_loadu_si512(random + j), count), field);
    __m512i r = _mm512_add_epi32(x, bits);
    r = _mm512_mask_or_epi32(r, _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), x, quiet);  // NaN: (x >> 16) | 0x40
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + j), _mm512_cvtepi32_epi16(_mm512_srli_epi32(r, 16)));
  }
#endif
#pragma omp simd
  for (int64_t i = j; i < n; ++i) out[i] = rules::to_bfloat16_bits_stochastic(in[i], random[i] >> shift);
}

inline void float_to_float16_block(const float* in, unsigned short* out, int64_t n) {
  int64_t j = 0;
#if defined(__AVX512F__)
  for (; j + 16 <= n; j += 16)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + j),
                        _mm512_cvtps_ph(_mm512_loadu_ps(in + j), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
#endif
#pragma omp simd
  for (int64_t i = j; i < n; ++i) out[i] = rules::to_float16_bits(in[i]);
}

}  // namespace cpu
FUSEDOPT_NAMESPACE_END
