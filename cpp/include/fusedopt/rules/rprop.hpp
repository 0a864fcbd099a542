// Rprop, one element. torch.optim.Rprop semantics (Riedmiller & Braun 1993):
//   https://pytorch.org/docs/stable/generated/torch.optim.Rprop.html
//
//   g  = ±grad (− if maximize)
//   f  = η+ if g·prev > 0, η− if g·prev < 0, 1 otherwise            (NaN too: torch.sign(NaN) is 0)
//   s  = clamp(s·f, step_min, step_max)                              per-element step size
//   g  = 0 where f = η−                                              a sign change: no step this time
//   p  = p − sign(g)·s ;  prev = g                                  (sign(NaN) = 0: no step)
// step_size starts at lr, prev at 0 (the optimizer's state); lr is not read after that.
#pragma once
#include "../common.hpp"

FUSEDOPT_NAMESPACE_BEGIN
namespace rules {

template <typename T>
struct RpropScalars {
  FUSEDOPT_SCALARS(grad_sign,                 // −1 if maximize, else 1
                   etaminus, etaplus,         // 0 < η− < 1 < η+
                   step_size_min, step_size_max)
};

template <unsigned Flags>  // no flags: one variant
struct Rprop {
  static constexpr const char* name = "rprop";
  static constexpr const char* flags = "";
  static constexpr const char* slots = "param, grad, prev, step_size";
  static constexpr unsigned present = 0b1111u;
  template <typename U> using Scalars = RpropScalars<U>;

  template <typename T>
  FUSEDOPT_HD static void element(T& p, T grad, T& prev, T& step_size, const RpropScalars<T>& s) {
    T g = s.grad_sign * grad;
    const T product = g * prev;
    const T factor = product > T(0) ? s.etaplus : (product < T(0) ? s.etaminus : T(1));
    step_size = clamp(step_size * factor, s.step_size_min, s.step_size_max);   // adapt the step size
    g = factor == s.etaminus ? T(0) : g;                                       // sign change: skip
    p = fused_mul_add(-sign(g), step_size, p);                                 // p − sign(g)·s
    prev = g;
  }
};

}  // namespace rules
FUSEDOPT_NAMESPACE_END
