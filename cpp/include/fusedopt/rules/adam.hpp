// Adam and AdamW, one element. torch.optim.Adam / torch.optim.AdamW semantics:
//   https://pytorch.org/docs/stable/generated/torch.optim.Adam.html
//   https://pytorch.org/docs/stable/generated/torch.optim.AdamW.html
//
//   g  = ±grad (− if maximize)
//   g  = g + wd·p                                   Adam  (L2 weight decay)
//   p  = p · (1 − lr·wd)                            AdamW (decoupled weight decay)
//   m  = β1·m + (1 − β1)·g                          first moment
//   v  = β2·v + (1 − β2)·g²                         second moment
//   v̂  = max(v̂, v)                                  amsgrad only; otherwise v̂ = v
//   p  = p − lr/(1 − β1^t) · m / (√v̂ / √(1 − β2^t) + eps)
//
// The last line is computed as p − α·m / (√v̂ + ε') with α = lr·√(1 − β2^t)/(1 − β1^t) and
// ε' = eps·√(1 − β2^t) (multiply numerator and denominator by √(1 − β2^t)): the same number up to
// rounding, with one division per element instead of two (division and square root bound the
// speed of this loop once the data sits in cache). The scalars are computed once per step by the
// spec (fusedopt/functional/adam.py).
#pragma once
#include "../common.hpp"

FUSEDOPT_NAMESPACE_BEGIN
namespace rules {

template <typename T>
struct AdamScalars {
  FUSEDOPT_SCALARS(grad_sign,                 // −1 if maximize, else 1
                   l2,                        // wd for Adam, 0 for AdamW
                   decay,                     // 1 − lr·wd for AdamW, 1 for Adam
                   beta1, one_minus_beta1,
                   beta2, one_minus_beta2,
                   step_size,                 // α = lr·√(1 − β2^t) / (1 − β1^t)
                   eps)                       // ε' = eps·√(1 − β2^t)
};

// Flags bit 0: amsgrad. Each variant is its own compiled kernel.
template <unsigned Flags>
struct Adam {
  static constexpr const char* name = "adam";
  static constexpr const char* flags = "amsgrad";
  static constexpr const char* slots = "param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq";
  static constexpr bool amsgrad = Flags & 1u;
  static constexpr unsigned present = amsgrad ? 0b11111u : 0b01111u;  // the slots this variant uses
  template <typename U> using Scalars = AdamScalars<U>;

  template <typename T>
  FUSEDOPT_HD static void element(T& p, T grad, T& m, T& v, T& v_max, const AdamScalars<T>& s) {
    const T g = with_l2(s.l2, p, s.grad_sign * grad);  // gradient (+ L2 term)
    const T p_decayed = p * s.decay;                                  // decoupled weight decay
    m = lerp(m, g, s.one_minus_beta1);                                // first moment (torch: lerp)
    v = fused_mul_add(s.beta2, v, s.one_minus_beta2 * g * g);         // second moment
    T v_hat = v;
    if (amsgrad) {
      v_max = max_propagating(v_max, v);                              // running max of v
      v_hat = v_max;
    }
    const T denom = square_root(v_hat) + s.eps;                       // √v̂ + ε'
    p = fused_mul_add(-s.step_size, m / denom, p_decayed);            // p − α·m/(√v̂ + ε')
  }
};

}  // namespace rules
FUSEDOPT_NAMESPACE_END
