// LARS, one element (You, Gitman & Ginsburg 2017, "Large Batch Training of Convolutional Networks"), as
// optax.lars computes it (add_decayed_weights, scale_by_trust_ratio, scale_by_learning_rate, trace):
//
//   u  = ±grad (− if maximize) + wd·p
//   r  = η·‖p‖/(‖u‖ + eps) per tensor (1 when either norm is 0)     η = trust_coefficient
//   b  = μ·b − lr·r·u                                               momentum (starts at 0)
//   p  = p + b,  or p + μ·b − lr·r·u with nesterov
// With trust_ratio off (a param group of biases and norm weights, as usually excluded) r = 1: SGD with
// momentum and weight decay, in one pass. Otherwise two passes: ‖p‖ and ‖u‖ first (in fixed chunks
// and lanes, the same bits for any thread count and ISA), then the update.
#pragma once
#include "../common.hpp"

FUSEDOPT_NAMESPACE_BEGIN
namespace rules {

template <typename T>
struct LarsScalars {
  FUSEDOPT_SCALARS(grad_sign,                 // −1 if maximize, else 1
                   weight_decay,
                   trust_coefficient,
                   eps,
                   momentum,
                   lr)
};

// Flags bit 0: trust_ratio, bit 1: nesterov.
template <unsigned Flags>
struct Lars {
  static constexpr const char* name = "lars";
  static constexpr const char* flags = "trust_ratio, nesterov";
  static constexpr const char* slots = "param, grad, momentum_buffer";
  static constexpr bool trust_ratio = Flags & 1u;
  static constexpr bool nesterov = Flags & 2u;
  static constexpr unsigned present = 0b111u;
  static constexpr int n_norms = trust_ratio ? 2 : 0;  // ‖p‖, ‖u‖
  static constexpr unsigned first_pass_writes = 0u;   // the second pass writes p and b
  template <typename U> using Scalars = LarsScalars<U>;

  template <typename T>
  FUSEDOPT_HD static T direction(T p, T grad, const LarsScalars<T>& s) {
    return with_l2(s.weight_decay, p, s.grad_sign * grad);            // u = g + wd·p
  }

  template <typename T>
  FUSEDOPT_HD static void norm_terms(T& p, T grad, T&, const LarsScalars<T>& s, T& p_square, T& u_square) {
    const T u = direction(p, grad, s);
    p_square = p * p;
    u_square = u * u;
  }

  template <typename T>
  FUSEDOPT_HD static double tensor_factor(const double* norms, const LarsScalars<T>& s) {
    if (norms[0] == 0.0 || norms[1] == 0.0) return 1.0;              // optax: a zero norm gives ratio 1
    return double(s.trust_coefficient) * norms[0] / (norms[1] + double(s.eps));
  }

  template <typename T>
  FUSEDOPT_HD static void element(T& p, T grad, T& b, const LarsScalars<T>& s, T factor) {
    const T step = -(s.lr * factor) * direction(p, grad, s);          // −lr·r·u
    b = fused_mul_add(s.momentum, b, step);                           // b = μ·b − lr·r·u
    p = p + (nesterov ? fused_mul_add(s.momentum, b, step) : b);
  }
};

}  // namespace rules
FUSEDOPT_NAMESPACE_END
