// Adamax, one element. torch.optim.Adamax semantics (Kingma & Ba 2015, §7.1):
//   https://pytorch.org/docs/stable/generated/torch.optim.Adamax.html
//
//   g  = ±grad (− if maximize) + wd·p
//   m  = β1·m + (1 − β1)·g                          first moment
//   u  = max(β2·u, |g| + eps)                       exponentially weighted infinity norm (a NaN stays)
//   p  = p − lr/(1 − β1^t) · m / u
#pragma once
#include "../common.hpp"

FUSEDOPT_NAMESPACE_BEGIN
namespace rules {

template <typename T>
struct AdamaxScalars {
  FUSEDOPT_SCALARS(grad_sign,                 // −1 if maximize, else 1
                   weight_decay,
                   beta1, one_minus_beta1,
                   beta2,
                   eps,
                   clr)                       // lr / (1 − β1^t)
};

template <unsigned Flags>  // no flags: one variant
struct Adamax {
  static constexpr const char* name = "adamax";
  static constexpr const char* flags = "";
  static constexpr const char* slots = "param, grad, exp_avg, exp_inf";
  static constexpr unsigned present = 0b1111u;
  template <typename U> using Scalars = AdamaxScalars<U>;

  template <typename T>
  FUSEDOPT_HD static void element(T& p, T grad, T& m, T& u, const AdamaxScalars<T>& s) {
    const T g = with_l2(s.weight_decay, p, s.grad_sign * grad);       // gradient + L2 term
    m = lerp(m, g, s.one_minus_beta1);                                // first moment (torch: lerp)
    u = maximum(s.beta2 * u, magnitude(g) + s.eps);                   // infinity norm
    p = fused_mul_add(-s.clr, m / u, p);                              // p − clr·m/u
  }
};

}  // namespace rules
FUSEDOPT_NAMESPACE_END
