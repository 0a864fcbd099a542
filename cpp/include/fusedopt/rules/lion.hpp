// Lion, one element (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms"; the authors'
// PyTorch code, google/automl lion/lion_pytorch.py, and optax.lion give the same update):
//
//   g  = ±grad (− if maximize)
//   c  = β1·m + (1 − β1)·g                          interpolation, for the sign only
//   p  = p·(1 − lr·wd) − lr·sign(c)                 decoupled weight decay, then the sign step
//   m  = β2·m + (1 − β2)·g                          momentum, with the other beta
#pragma once
#include "../common.hpp"

FUSEDOPT_NAMESPACE_BEGIN
namespace rules {

template <typename T>
struct LionScalars {
  FUSEDOPT_SCALARS(grad_sign,                 // −1 if maximize, else 1
                   decay,                     // 1 − lr·wd
                   lr,
                   beta1, one_minus_beta1,
                   beta2, one_minus_beta2)
};

template <unsigned Flags>  // no flags: one variant
struct Lion {
  static constexpr const char* name = "lion";
  static constexpr const char* flags = "";
  static constexpr const char* slots = "param, grad, exp_avg";
  static constexpr unsigned present = 0b111u;
  template <typename U> using Scalars = LionScalars<U>;

  template <typename T>
  FUSEDOPT_HD static void element(T& p, T grad, T& m, const LionScalars<T>& s) {
    const T g = s.grad_sign * grad;
    const T c = fused_mul_add(s.beta1, m, s.one_minus_beta1 * g);     // c = β1·m + (1−β1)·g
    p = fused_mul_add(-s.lr, sign(c), p * s.decay);                   // p·(1 − lr·wd) − lr·sign(c)
    m = fused_mul_add(s.beta2, m, s.one_minus_beta2 * g);             // m = β2·m + (1−β2)·g
  }
};

}  // namespace rules
FUSEDOPT_NAMESPACE_END
