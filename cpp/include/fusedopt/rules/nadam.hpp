// NAdam, one element. torch.optim.NAdam semantics (Dozat 2016, "Incorporating Nesterov Momentum into
// Adam"):  https://pytorch.org/docs/stable/generated/torch.optim.NAdam.html
//
//   g  = ±grad (− if maximize) + wd·p              (decoupled_weight_decay: p = p·(1 − lr·wd) instead)
//   μt = β1·(1 − ½·0.96^(t·ψ)),  μt+1 likewise,  Πt = μ1·…·μt          (ψ = momentum_decay; host)
//   m  = β1·m + (1 − β1)·g ;  v = β2·v + (1 − β2)·g²
//   p  = p − lr·(1 − μt)/(1 − Πt) · g/d − lr·μt+1/(1 − Πt·μt+1) · m/d,   d = √(v/(1 − β2^t)) + eps
//
// Computed as p + (cg·g + cm·m)/(√v + ε') with both coefficients and eps multiplied by √(1 − β2^t)
// (ε' = eps·√(1 − β2^t)): the same number up to rounding, one division per element.
#pragma once
#include "../common.hpp"

FUSEDOPT_NAMESPACE_BEGIN
namespace rules {

template <typename T>
struct NadamScalars {
  FUSEDOPT_SCALARS(grad_sign,                 // −1 if maximize, else 1
                   l2,                        // wd, or 0 with decoupled weight decay
                   decay,                     // 1 − lr·wd with decoupled weight decay, else 1
                   one_minus_beta1,
                   beta2, one_minus_beta2,
                   grad_coefficient,          // cg = −lr·(1 − μt)/(1 − Πt)·√(1 − β2^t)
                   avg_coefficient,           // cm = −lr·μt+1/(1 − Πt·μt+1)·√(1 − β2^t)
                   eps)                       // ε' = eps·√(1 − β2^t)
};

template <unsigned Flags>  // no flags: one variant
struct Nadam {
  static constexpr const char* name = "nadam";
  static constexpr const char* flags = "";
  static constexpr const char* slots = "param, grad, exp_avg, exp_avg_sq";
  static constexpr unsigned present = 0b1111u;
  template <typename U> using Scalars = NadamScalars<U>;

  template <typename T>
  FUSEDOPT_HD static void element(T& p, T grad, T& m, T& v, const NadamScalars<T>& s) {
    const T g = with_l2(s.l2, p, s.grad_sign * grad);                 // gradient (+ L2 term)
    const T p_decayed = p * s.decay;                                  // decoupled weight decay
    m = lerp(m, g, s.one_minus_beta1);                                // first moment (torch: lerp)
    v = fused_mul_add(s.beta2, v, s.one_minus_beta2 * g * g);         // second moment
    const T step = fused_mul_add(s.grad_coefficient, g, s.avg_coefficient * m);
    p = p_decayed + step / (square_root(v) + s.eps);                  // p + (cg·g + cm·m)/(√v + ε')
  }
};

}  // namespace rules
FUSEDOPT_NAMESPACE_END
