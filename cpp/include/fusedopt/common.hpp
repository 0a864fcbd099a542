// Shared by the rules, the CPU drivers and the CUDA sources (compiled by NVRTC, so no host-only
// headers on the device path).
#pragma once

#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
#define FUSEDOPT_HD __host__ __device__ __forceinline__
#define FUSEDOPT_DEVICE_COMPILE 1
#else
#define FUSEDOPT_HD inline __attribute__((always_inline))  // SIMD loops need the rules inlined
#include <cmath>
#include <cstdint>
#endif

// Each CPU instruction-set build wraps everything in its own inline namespace, so that inline
// functions compiled with -mavx2 are never picked by the linker for the baseline build.
#if defined(FUSEDOPT_ISA_NAMESPACE)
#define FUSEDOPT_NAMESPACE_BEGIN namespace fusedopt { inline namespace FUSEDOPT_ISA_NAMESPACE {
#define FUSEDOPT_NAMESPACE_END } }
#else
#define FUSEDOPT_NAMESPACE_BEGIN namespace fusedopt {
#define FUSEDOPT_NAMESPACE_END }
#endif

FUSEDOPT_NAMESPACE_BEGIN

// a·b + c with one rounding, the same on every CPU ISA and on the GPU.
FUSEDOPT_HD float fused_mul_add(float a, float b, float c) {
#if defined(FUSEDOPT_DEVICE_COMPILE)
  return fmaf(a, b, c);
#else
  return __builtin_fmaf(a, b, c);  // builtins, not std:: wrappers: nothing shared between ISA builds
#endif
}
FUSEDOPT_HD double fused_mul_add(double a, double b, double c) {
#if defined(FUSEDOPT_DEVICE_COMPILE)
  return fma(a, b, c);
#else
  return __builtin_fma(a, b, c);
#endif
}

// Correctly rounded square root (IEEE), so every backend agrees.
FUSEDOPT_HD float square_root(float x) {
#if defined(FUSEDOPT_DEVICE_COMPILE)
  return sqrtf(x);
#else
  return __builtin_sqrtf(x);
#endif
}
FUSEDOPT_HD double square_root(double x) {
#if defined(FUSEDOPT_DEVICE_COMPILE)
  return sqrt(x);
#else
  return __builtin_sqrt(x);
#endif
}

// A rule's per-step scalars, one type T for every field, named once: the Python spec fills them by
// these names (fusedopt._core.rules()), so a field it does not give is an error, never a zero.
// Use inside `template <typename T> struct XScalars { FUSEDOPT_SCALARS(a, b, c) };`.
#define FUSEDOPT_SCALARS(...) \
  T __VA_ARGS__;              \
  static constexpr const char* field_names = #__VA_ARGS__;

// The number of names in a comma-separated list ("a, b, c" -> 3; "" -> 0), at compile time.
FUSEDOPT_HD constexpr int count_names(const char* list) {
  int n = 0;
  bool in_name = false;
  for (; *list != '\0'; ++list) {
    if (*list == ',') in_name = false;
    else if (*list != ' ' && !in_name) in_name = true, ++n;
  }
  return n;
}

// max that keeps a NaN coming from `b` (torch.maximum propagates NaN).
template <typename T>
FUSEDOPT_HD T max_propagating(T a, T b) {
  return (a > b) ? a : b;
}

// a + w·(b − a), as torch's lerp computes it (w < 0.5: fma(w, b − a, a); else fma(w − 1, b − a, b)).
// torch.optim updates its first moments with lerp; unlike β·a + (1 − β)·b, lerp turns an infinite
// moment NaN at the next finite gradient (inf − inf), and the rules do the same.
template <typename T>
FUSEDOPT_HD T lerp(T a, T b, T w) {
  const T difference = b - a;
  return w < T(0.5) ? fused_mul_add(w, difference, a) : fused_mul_add(w - T(1), difference, b);
}

// max that keeps a NaN from either side (torch.maximum): a NaN that entered a running maximum stays.
template <typename T>
FUSEDOPT_HD T maximum(T a, T b) {
  return (a > b || a != a) ? a : b;
}

// x clamped to [lo, hi], a NaN x kept (torch.clamp).
template <typename T>
FUSEDOPT_HD T clamp(T x, T lo, T hi) {
  const T above = x < lo ? lo : x;
  return above > hi ? hi : above;
}

// −1, 0 or 1 by the sign of x, and 0 for NaN, as torch.sign computes it ((x > 0) − (x < 0)).
template <typename T>
FUSEDOPT_HD T sign(T x) {
  return x > T(0) ? T(1) : (x < T(0) ? T(-1) : T(0));
}

// |x| as a select, so the SIMD loops vectorize it the same way on every ISA.
template <typename T>
FUSEDOPT_HD T magnitude(T x) {
  return x < T(0) ? -x : x;
}

// The gradient with its L2 term, g + wd·p, where the term is left out when wd is 0, as torch leaves
// it out: 0·p is NaN for an infinite p, and -0 + 0 is +0. A select, so the SIMD loops still vectorize.
template <typename T>
FUSEDOPT_HD T with_l2(T weight_decay, T p, T g) {
  return weight_decay != T(0) ? fused_mul_add(weight_decay, p, g) : g;
}

FUSEDOPT_NAMESPACE_END
