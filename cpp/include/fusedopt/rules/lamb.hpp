// LAMB, one element (You et al. 2020, "Large Batch Optimization for Deep Learning: Training BERT in
// 76 minutes"), as optax.lamb computes it (scale_by_adam, add_decayed_weights, scale_by_trust_ratio):
//
//   g  = ±grad (− if maximize)
//   m  = β1·m + (1 − β1)·g ;  v = β2·v + (1 − β2)·g²
//   u  = (m/(1 − β1^t)) / (√(v/(1 − β2^t)) + eps) + wd·p        the Adam direction with weight decay
//   r  = ‖p‖/‖u‖ per tensor (1 when either norm is 0)              the trust ratio
//   p  = p − lr·r·u
// u is computed as α·m/(√v + ε') with α = √(1 − β2^t)/(1 − β1^t), ε' = eps·√(1 − β2^t) (as Adam's rule:
// the same number up to rounding, one division per element and pass).
// Two passes: the first updates m and v and sums p² and u² per tensor (in fixed chunks and lanes, the
// same bits for any thread count and ISA); the second recomputes u from m, v and p and writes p.
// apex/DeepSpeed FusedLAMB differ: they clip the global gradient norm first (max_grad_norm=1.0) and
// DeepSpeed clamps r to [0.01, 10]; apex skips the ratio for params with weight decay 0.
#pragma once
#include "../common.hpp"

FUSEDOPT_NAMESPACE_BEGIN
namespace rules {

template <typename T>
struct LambScalars {
  FUSEDOPT_SCALARS(grad_sign,                 // −1 if maximize, else 1
                   beta1, one_minus_beta1,
                   beta2, one_minus_beta2,
                   direction_scale,           // α = √(1 − β2^t)/(1 − β1^t)
                   eps,                       // ε' = eps·√(1 − β2^t)
                   weight_decay,
                   lr)
};

template <unsigned Flags>  // no flags: one variant
struct Lamb {
  static constexpr const char* name = "lamb";
  static constexpr const char* flags = "";
  static constexpr const char* slots = "param, grad, exp_avg, exp_avg_sq";
  static constexpr unsigned present = 0b1111u;
  static constexpr int n_norms = 2;  // ‖p‖, ‖u‖
  static constexpr unsigned first_pass_writes = 0b1100u;  // m and v (the second pass writes p)
  template <typename U> using Scalars = LambScalars<U>;

  template <typename T>
  FUSEDOPT_HD static T direction(T p, T m, T v, const LambScalars<T>& s) {
    const T adam = s.direction_scale * m / (square_root(v) + s.eps);     // α·m/(√v + ε'), one division
    return with_l2(s.weight_decay, p, adam);                           // u = adam + wd·p
  }

  // First pass: the moments, and the squared terms of ‖p‖ and ‖u‖.
  template <typename T>
  FUSEDOPT_HD static void norm_terms(T& p, T grad, T& m, T& v, const LambScalars<T>& s, T& p_square, T& u_square) {
    const T g = s.grad_sign * grad;
    m = fused_mul_add(s.beta1, m, s.one_minus_beta1 * g);             // optax's form: β1·m + (1−β1)·g
    v = fused_mul_add(s.beta2, v, s.one_minus_beta2 * g * g);
    const T u = direction(p, m, v, s);
    p_square = p * p;
    u_square = u * u;
  }

  template <typename T>
  FUSEDOPT_HD static double tensor_factor(const double* norms, const LambScalars<T>&) {
    return norms[0] == 0.0 || norms[1] == 0.0 ? 1.0 : norms[0] / norms[1];  // trust ratio (NaN stays)
  }

  // Second pass: p − lr·r·u, with u from the moments of the first pass.
  template <typename T>
  FUSEDOPT_HD static void element(T& p, T, T& m, T& v, const LambScalars<T>& s, T factor) {
    p = fused_mul_add(-(s.lr * factor), direction(p, m, v, s), p);
  }
};

}  // namespace rules
FUSEDOPT_NAMESPACE_END
