// The 16-bit storage types and their conversions to and from float, bit-exact, host and device:
//   bfloat16: the top 16 bits of a float32 (8-bit exponent, 7-bit mantissa);
//   float16:  IEEE binary16 (5-bit exponent, 10-bit mantissa, subnormals below 2^−14).
// Loads are exact. NaNs come out quiet with their payload's leading bits, as x86's F16C conversions
// (VCVTPH2PS, VCVTPS2PH) make them, so that those instructions give these bits (cpu/convert.hpp). Stores round to nearest even (what torch's .to(), NumPy and ml_dtypes do), or for
// bfloat16 stochastically: the 16 bits dropped are compared with 16 random bits, so that the rounded
// value's mean is the float's (x rounds up with probability (x − down)/(up − down)).
//
// Only integer operations and selects (and exact int→float conversions), so the SIMD loops vectorize
// them on every ISA, the bits are the same everywhere, and no step depends on denormals-are-zero
// modes. AVX-512's VCVTNEPS2BF16 is not used: it flushes float32 denormals to zero, where this rounds them.
#pragma once
#include "../common.hpp"

FUSEDOPT_NAMESPACE_BEGIN
namespace rules {

FUSEDOPT_HD unsigned int float_bits(float f) { return __builtin_bit_cast(unsigned int, f); }
FUSEDOPT_HD float float_from_bits(unsigned int u) { return __builtin_bit_cast(float, u); }

// c ? a : b for 32-bit patterns, as masks (a select GCC cannot turn into a branch).
FUSEDOPT_HD unsigned int select_bits(bool c, unsigned int a, unsigned int b) {
  const unsigned int mask = 0u - static_cast<unsigned int>(c);
  return (a & mask) | (b & ~mask);
}

FUSEDOPT_HD float bfloat16_to_float(unsigned short h) { return float_from_bits(static_cast<unsigned int>(h) << 16); }

FUSEDOPT_HD float float16_to_float(unsigned short h) {
  const unsigned int sign = (static_cast<unsigned int>(h) & 0x8000u) << 16;
  const unsigned int magnitude = h & 0x7fffu;
  const unsigned int normal = (magnitude << 13) + (112u << 23);   // rebias the exponent (127 − 15)
  const unsigned int quiet = select_bits(magnitude > 0x7c00u, 0x400000u, 0u);
  const unsigned int special = (magnitude << 13) | 0x7f800000u | quiet;  // inf, and NaN made quiet
  // a subnormal half m·2^−24: m converted exactly, then scaled by a power of two (a normal float)
  const unsigned int subnormal = float_bits(static_cast<float>(static_cast<int>(magnitude)) * 5.9604644775390625e-08f);
  return float_from_bits(sign | select_bits(magnitude >= 0x7c00u, special,
                                            select_bits(magnitude < 0x400u, subnormal, normal)));
}

FUSEDOPT_HD unsigned short to_bfloat16_bits(float f) {
  const unsigned int x = float_bits(f);
  const unsigned int nearest = (x + 0x7fffu + ((x >> 16) & 1u)) >> 16;
  return static_cast<unsigned short>(select_bits((x & 0x7fffffffu) > 0x7f800000u, (x >> 16) | 0x40u, nearest));
}

// random: 16 uniform bits (the low 16 of the argument are used).
FUSEDOPT_HD unsigned short to_bfloat16_bits_stochastic(float f, unsigned int random) {
  const unsigned int x = float_bits(f);
  const unsigned int rounded = (x + (random & 0xffffu)) >> 16;  // an overflow past the largest finite is inf
  return static_cast<unsigned short>(select_bits((x & 0x7fffffffu) > 0x7f800000u, (x >> 16) | 0x40u, rounded));
}

FUSEDOPT_HD unsigned short to_float16_bits(float f) {
  const unsigned int bits = float_bits(f);
  const unsigned int sign = (bits >> 16) & 0x8000u;
  const unsigned int x = bits & 0x7fffffffu;
  // ≥ 65536 (inf), inf, or NaN: quiet, with the payload's top bits
  const unsigned int special = select_bits(x > 0x7f800000u, 0x7e00u | ((x >> 13) & 0x3ffu), 0x7c00u);
  // below 2^−14, a subnormal half (or zero): the float add rounds to nearest even at 2^−24
  const unsigned int subnormal = float_bits(float_from_bits(x) + 0.5f) - 0x3f000000u;
  const unsigned int normal = (x + 0xc8000fffu + ((x >> 13) & 1u)) >> 13;  // rebias (−112 << 23) and round
  return static_cast<unsigned short>(
      sign | select_bits(x >= 0x47800000u, special, select_bits(x < 0x38800000u, subnormal, normal)));
}

}  // namespace rules
FUSEDOPT_NAMESPACE_END
