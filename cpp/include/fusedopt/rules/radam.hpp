// RAdam, one element. torch.optim.RAdam semantics (Liu et al. 2020, "On the Variance of the Adaptive
// Learning Rate and Beyond"):  https://pytorch.org/docs/stable/generated/torch.optim.RAdam.html
//
//   g  = ±grad (− if maximize) + wd·p              (decoupled_weight_decay: p = p·(1 − lr·wd) instead)
//   m  = β1·m + (1 − β1)·g ;  v = β2·v + (1 − β2)·g²
//   ρ∞ = 2/(1 − β2) − 1 ;  ρt = ρ∞ − 2t·β2^t/(1 − β2^t)
//   ρt > 5 (rectified):  p = p − lr·r·√(1 − β2^t)/(1 − β1^t) · m / (√v + eps),
//                        r = √((ρt − 4)(ρt − 2)ρ∞ / ((ρ∞ − 4)(ρ∞ − 2)ρt))
//   otherwise:           p = p − lr/(1 − β1^t) · m                (SGD with momentum, bias-corrected)
// The spec computes the step size of each case once per step; ρt > 5 picks the variant.
#pragma once
#include "../common.hpp"

FUSEDOPT_NAMESPACE_BEGIN
namespace rules {

template <typename T>
struct RadamScalars {
  FUSEDOPT_SCALARS(grad_sign,                 // −1 if maximize, else 1
                   l2,                        // wd, or 0 with decoupled weight decay
                   decay,                     // 1 − lr·wd with decoupled weight decay, else 1
                   beta1, one_minus_beta1,
                   beta2, one_minus_beta2,
                   step_size,                 // lr·r·√(1 − β2^t)/(1 − β1^t) rectified, else lr/(1 − β1^t)
                   eps)
};

// Flags bit 0: rectified (ρt > 5). Both variants keep both moments.
template <unsigned Flags>
struct Radam {
  static constexpr const char* name = "radam";
  static constexpr const char* flags = "rectified";
  static constexpr const char* slots = "param, grad, exp_avg, exp_avg_sq";
  static constexpr bool rectified = Flags & 1u;
  static constexpr unsigned present = 0b1111u;
  template <typename U> using Scalars = RadamScalars<U>;

  template <typename T>
  FUSEDOPT_HD static void element(T& p, T grad, T& m, T& v, const RadamScalars<T>& s) {
    const T g = with_l2(s.l2, p, s.grad_sign * grad);                 // gradient (+ L2 term)
    const T p_decayed = p * s.decay;                                  // decoupled weight decay
    m = lerp(m, g, s.one_minus_beta1);                                // first moment (torch: lerp)
    v = fused_mul_add(s.beta2, v, s.one_minus_beta2 * g * g);         // second moment
    if (rectified) {
      p = fused_mul_add(-s.step_size, m / (square_root(v) + s.eps), p_decayed);
    } else {
      p = fused_mul_add(-s.step_size, m, p_decayed);
    }
  }
};

}  // namespace rules
FUSEDOPT_NAMESPACE_END
