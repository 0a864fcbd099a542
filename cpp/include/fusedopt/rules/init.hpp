// Random initializers, one Philox block at a time. Host and device, with only +, −, ×, ÷, √ and
// explicit FMA (no libm transcendental), so every CPU ISA and the GPU produce the same bits.
//
// Element i of a fill with seed s on stream k is made from Philox4x32-10 with
//   key = (s mod 2^32, s div 2^32),  counter = (block mod 2^32, block div 2^32, k mod 2^32, k div 2^32)
// where block = i / 4 for float outputs (4 values per block) and i / 2 for double outputs.
//
//   uniform [a, b):  u = (top 24 bits) · 2^−24  (53 bits for double), x = a + (b − a)·u, kept < b
//   normal:          Box–Muller: r = √(−2 ln u1), u1 ∈ (0, 1]; z = (r cos 2πu2, r sin 2πu2); x = μ + σz
//   truncated:       inverse CDF: y uniform in (2Φ(α) − 1, 2Φ(β) − 1); x = μ + σ√2·erfinv(y), clamped to [a, b]
//                    (erfinv: M. Giles, "Approximating the erfinv function", GPU Gems/2010, single-precision form)
#pragma once
#include "../common.hpp"
#include "../philox.hpp"
#include "storage.hpp"

namespace fusedopt {
enum class Distribution : int { Uniform = 0, Normal = 1, TruncatedNormal = 2 };

// Per-fill constants, computed on the host.
struct InitHyper {
  Distribution distribution;
  double a, b;          // uniform: [a, b); truncated: clamp bounds
  double mean, std;     // normal and truncated
  double y_lo, y_hi;    // truncated: erfinv's argument range 2Φ(α)−1, 2Φ(β)−1
  double upper_below;   // uniform: the largest value < b the output keeps (in the output's precision)
  unsigned long long seed, stream;
};
}  // namespace fusedopt

FUSEDOPT_NAMESPACE_BEGIN
namespace rules {

template <typename T> struct FloatBits;
template <> struct FloatBits<float> { using U = unsigned int; static constexpr int mantissa = 23, bias = 127; };
template <> struct FloatBits<double> { using U = unsigned long long; static constexpr int mantissa = 52, bias = 1023; };

template <typename T>
FUSEDOPT_HD typename FloatBits<T>::U bits_of(T x) {
  return __builtin_bit_cast(typename FloatBits<T>::U, x);
}
template <typename T>
FUSEDOPT_HD T from_bits(typename FloatBits<T>::U u) {
  return __builtin_bit_cast(T, u);
}

// c ? a : b through bit masks: GCC keeps some float selects as branches, which stop SIMD loops.
template <typename T>
FUSEDOPT_HD T pick(int c, T a, T b) {
  using U = typename FloatBits<T>::U;
  const U mask = U(0) - static_cast<U>(c);
  return from_bits<T>((bits_of(a) & mask) | (bits_of(b) & ~mask));
}

// ln x for a positive normal x: x = 2^e·m with m ∈ [√½, √2), ln m = 2·atanh(t), t = (m−1)/(m+1).
template <typename T>
FUSEDOPT_HD T log_positive(T x) {
  using B = FloatBits<T>;
  using U = typename B::U;
  const U u = bits_of(x);
  const U mantissa_mask = (U(1) << B::mantissa) - 1;
  const U sqrt2_mantissa = bits_of(T(1.4142135623730951)) & mantissa_mask;
  const U mant = u & mantissa_mask;
  // m ≥ √2: use m/2 and e + 1. Written as arithmetic on a 0/1 integer rather than a select, which
  // GCC would keep as a branch (and then not vectorize); int, not long long, for the same reason
  // (AVX2 converts 32-bit integers to floats in SIMD registers, not 64-bit ones).
  const int high = static_cast<int>(mant > sqrt2_mantissa);
  const T e = T(static_cast<int>(u >> B::mantissa) - B::bias + high);
  const U exponent_bits = static_cast<U>(B::bias - high) << B::mantissa;
  const T m = from_bits<T>(mant | exponent_bits);
  const T t = (m - T(1)) / (m + T(1));
  const T t2 = t * t;
  T series;  // 1 + t²/3 + t⁴/5 + ... (|t| ≤ 0.1716: enough terms for the type's precision)
  if constexpr (sizeof(T) == 4) {
    series = T(0.1111111111111111);
    series = fused_mul_add(series, t2, T(0.14285714285714285));
    series = fused_mul_add(series, t2, T(0.2));
    series = fused_mul_add(series, t2, T(0.3333333333333333));
    series = fused_mul_add(series, t2, T(1.0));
  } else {
    series = T(0.043478260869565216);
    series = fused_mul_add(series, t2, T(0.047619047619047616));
    series = fused_mul_add(series, t2, T(0.05263157894736842));
    series = fused_mul_add(series, t2, T(0.058823529411764705));
    series = fused_mul_add(series, t2, T(0.06666666666666667));
    series = fused_mul_add(series, t2, T(0.07692307692307693));
    series = fused_mul_add(series, t2, T(0.09090909090909091));
    series = fused_mul_add(series, t2, T(0.1111111111111111));
    series = fused_mul_add(series, t2, T(0.14285714285714285));
    series = fused_mul_add(series, t2, T(0.2));
    series = fused_mul_add(series, t2, T(0.3333333333333333));
    series = fused_mul_add(series, t2, T(1.0));
  }
  const T ln2_hi = T(0.693145751953125), ln2_lo = T(1.4286068203094172e-06);  // ln 2 = hi + lo
  return fused_mul_add(e, ln2_hi, fused_mul_add(e, ln2_lo, T(2) * t * series));
}

// sin and cos of x ∈ [0, π/4] by Taylor polynomials (error below the type's rounding).
template <typename T>
FUSEDOPT_HD void sincos_first_octant(T x, T& s, T& c) {
  const T x2 = x * x;
  T ps, pc;
  if constexpr (sizeof(T) == 4) {  // errors x^11/11! and x^12/12! at π/4: below 2e-9
    ps = T(2.7557319223985893e-06);
    ps = fused_mul_add(ps, x2, T(-0.0001984126984126984));
    ps = fused_mul_add(ps, x2, T(0.008333333333333333));
    ps = fused_mul_add(ps, x2, T(-0.16666666666666666));
    ps = fused_mul_add(ps, x2, T(1.0));
    pc = T(-2.755731922398589e-07);
    pc = fused_mul_add(pc, x2, T(2.48015873015873e-05));
    pc = fused_mul_add(pc, x2, T(-0.001388888888888889));
    pc = fused_mul_add(pc, x2, T(0.041666666666666664));
    pc = fused_mul_add(pc, x2, T(-0.5));
    pc = fused_mul_add(pc, x2, T(1.0));
  } else {  // errors below 1e-17
    ps = T(2.8114572543455206e-15);
    ps = fused_mul_add(ps, x2, T(-7.647163731819816e-13));
    ps = fused_mul_add(ps, x2, T(1.6059043836821613e-10));
    ps = fused_mul_add(ps, x2, T(-2.505210838544172e-08));
    ps = fused_mul_add(ps, x2, T(2.7557319223985893e-06));
    ps = fused_mul_add(ps, x2, T(-0.0001984126984126984));
    ps = fused_mul_add(ps, x2, T(0.008333333333333333));
    ps = fused_mul_add(ps, x2, T(-0.16666666666666666));
    ps = fused_mul_add(ps, x2, T(1.0));
    pc = T(4.779477332387385e-14);
    pc = fused_mul_add(pc, x2, T(-1.1470745597729725e-11));
    pc = fused_mul_add(pc, x2, T(2.08767569878681e-09));
    pc = fused_mul_add(pc, x2, T(-2.755731922398589e-07));
    pc = fused_mul_add(pc, x2, T(2.48015873015873e-05));
    pc = fused_mul_add(pc, x2, T(-0.001388888888888889));
    pc = fused_mul_add(pc, x2, T(0.041666666666666664));
    pc = fused_mul_add(pc, x2, T(-0.5));
    pc = fused_mul_add(pc, x2, T(1.0));
  }
  s = ps * x;
  c = pc;
}

// cos 2πu and sin 2πu for u ∈ [0, 1): octant k = ⌊8u⌋ (exact), then symmetry.
template <typename T>
FUSEDOPT_HD void sincos_turns(T u, T& s, T& c) {
  const T q = u * T(8);
  const int k = static_cast<int>(q);
  const T f = q - T(k);
  const T x = pick(k & 1, T(1) - f, f) * T(0.78539816339744830962);  // π/4
  T sx, cx;
  sincos_first_octant(x, sx, cx);
  const int swap = ((k + 1) >> 1) & 1;           // octants 1, 2, 5, 6
  const int cos_negative = (k >= 2) & (k <= 5);
  const int sin_negative = k >= 4;
  c = pick(cos_negative, T(-1), T(1)) * pick(swap, sx, cx);
  s = pick(sin_negative, T(-1), T(1)) * pick(swap, cx, sx);
}

// Giles' two polynomials for erfinv: the central one in a = w − 2.5 (w < 5), the tail one in b = √w − 3.
template <typename T>
FUSEDOPT_HD T erfinv_central(T w) {
  const T a = w - T(2.5);
  T p = T(2.81022636e-08);
  p = fused_mul_add(p, a, T(3.43273939e-07));
  p = fused_mul_add(p, a, T(-3.5233877e-06));
  p = fused_mul_add(p, a, T(-4.39150654e-06));
  p = fused_mul_add(p, a, T(0.00021858087));
  p = fused_mul_add(p, a, T(-0.00125372503));
  p = fused_mul_add(p, a, T(-0.00417768164));
  p = fused_mul_add(p, a, T(0.246640727));
  return fused_mul_add(p, a, T(1.50140941));
}

template <typename T>
FUSEDOPT_HD T erfinv_tail(T w) {
  const T b = square_root(w) - T(3);
  T q = T(-0.000200214257);
  q = fused_mul_add(q, b, T(0.000100950558));
  q = fused_mul_add(q, b, T(0.00134934322));
  q = fused_mul_add(q, b, T(-0.00367342844));
  q = fused_mul_add(q, b, T(0.00573950773));
  q = fused_mul_add(q, b, T(-0.0076224613));
  q = fused_mul_add(q, b, T(0.00943887047));
  q = fused_mul_add(q, b, T(1.00167406));
  return fused_mul_add(q, b, T(2.83297682));
}

// erfinv(y), |y| < 1 (Giles' single-precision polynomials; relative error about 4e−7). Branch: evaluate
// only the polynomial that applies (the GPU: a warp whose values all fall in one branch skips the
// other); else both, then a select (SIMD loops on the CPU: no control flow). The same bits either way.
template <typename T, bool Branch = false>
FUSEDOPT_HD T erfinv(T y) {
  const T w = -log_positive((T(1) - y) * (T(1) + y));
  if constexpr (Branch) {
    return (w < T(5) ? erfinv_central(w) : erfinv_tail(w)) * y;
  } else {
    return pick(w < T(5), erfinv_central(w), erfinv_tail(w)) * y;
  }
}

// Uniform in [0, 1) and (0, 1] from one (float) or two (double) 32-bit words.
FUSEDOPT_HD float unit_float(unsigned int w) { return float(w >> 8) * 5.9604644775390625e-08f; }  // 2^-24
FUSEDOPT_HD double unit_double(unsigned int hi, unsigned int lo) {
  const unsigned long long bits53 = ((static_cast<unsigned long long>(hi) << 32) | lo) >> 11;
  return double(bits53) * 1.1102230246251565e-16;  // 2^-53
}

// Values per Philox block: 4 for float math, 2 for double.
template <typename T> struct PerBlock { static constexpr int value = sizeof(T) == 4 ? 4 : 2; };

template <typename T>
FUSEDOPT_HD PhiloxBlock init_philox(const InitHyper& h, unsigned long long block) {
  return philox4x32_10(static_cast<unsigned int>(block), static_cast<unsigned int>(block >> 32),
                       static_cast<unsigned int>(h.stream), static_cast<unsigned int>(h.stream >> 32),
                       static_cast<unsigned int>(h.seed), static_cast<unsigned int>(h.seed >> 32));
}

// The block's uniforms in [0, 1): 4 floats from the top 24 bits of each word, or 2 doubles from
// the top 53 bits of each pair of words.
template <typename T>
FUSEDOPT_HD void block_uniforms(const PhiloxBlock& r, T u[4]) {
  if constexpr (sizeof(T) == 4) {
    for (int j = 0; j < 4; ++j) u[j] = T(unit_float(r.v[j]));
  } else {
    u[0] = T(unit_double(r.v[0], r.v[1]));
    u[1] = T(unit_double(r.v[2], r.v[3]));
  }
}

template <typename T>
FUSEDOPT_HD T uniform_value(T u, const InitHyper& h) {
  const T x = fused_mul_add(u, T(h.b - h.a), T(h.a));
  return pick(x < T(h.upper_below), x, T(h.upper_below));       // never b itself
}

// Box–Muller: a pair of uniforms -> a pair of normals.
template <typename T>
FUSEDOPT_HD void normal_pair(T u_radius, T u_angle, const InitHyper& h, T& z0, T& z1) {
  const T radius = square_root(T(-2) * log_positive(T(1) - u_radius));  // 1 − u ∈ (0, 1]: ln defined
  T s, c;
  sincos_turns(u_angle, s, c);
  z0 = fused_mul_add(T(h.std), radius * c, T(h.mean));
  z1 = fused_mul_add(T(h.std), radius * s, T(h.mean));
}

template <typename T, bool Branch = false>
FUSEDOPT_HD T truncated_value(T u, const InitHyper& h) {
  const T y = fused_mul_add(u, T(h.y_hi - h.y_lo), T(h.y_lo));
  const T x = fused_mul_add(T(h.std * 1.4142135623730951), erfinv<T, Branch>(y), T(h.mean));
  return pick(x < T(h.a), T(h.a), pick(x > T(h.b), T(h.b), x));
}

// The PerBlock<T> values of one block, in the computation type T (float or double). Branch: erfinv's
// branching form (the GPU's).
template <typename T, bool Branch = false>
FUSEDOPT_HD void init_block(const InitHyper& h, unsigned long long block, T out[4]) {
  T u[4];
  block_uniforms<T>(init_philox<T>(h, block), u);
  const int n = PerBlock<T>::value;
  if (h.distribution == Distribution::Uniform) {
    for (int j = 0; j < n; ++j) out[j] = uniform_value(u[j], h);
  } else if (h.distribution == Distribution::Normal) {
    for (int j = 0; j < n; j += 2) normal_pair(u[j], u[j + 1], h, out[j], out[j + 1]);
  } else {
    for (int j = 0; j < n; ++j) out[j] = truncated_value<T, Branch>(u[j], h);
  }
}

}  // namespace rules
FUSEDOPT_NAMESPACE_END
