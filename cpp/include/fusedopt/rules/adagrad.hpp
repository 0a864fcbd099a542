// Adagrad, one element. torch.optim.Adagrad semantics:
//   https://pytorch.org/docs/stable/generated/torch.optim.Adagrad.html
//
//   clr = lr / (1 + (t − 1)·lr_decay)                 once per step, on the host
//   g   = ±grad (− if maximize) + wd·p
//   s   = s + g²                                       sum of squares (starts at initial_accumulator_value)
//   p   = p − clr · g / (√s + eps)
#pragma once
#include "../common.hpp"

FUSEDOPT_NAMESPACE_BEGIN
namespace rules {

template <typename T>
struct AdagradScalars {
  FUSEDOPT_SCALARS(grad_sign,     // −1 if maximize, else 1
                   weight_decay,
                   clr,           // decayed learning rate
                   eps)
};

// No flags: one variant.
template <unsigned Flags>
struct Adagrad {
  static constexpr const char* name = "adagrad";
  static constexpr const char* flags = "";
  static constexpr const char* slots = "param, grad, sum";
  static constexpr unsigned present = 0b111u;
  template <typename U> using Scalars = AdagradScalars<U>;

  template <typename T>
  FUSEDOPT_HD static void element(T& p, T grad, T& sum, const AdagradScalars<T>& s) {
    const T g = with_l2(s.weight_decay, p, s.grad_sign * grad);  // gradient + L2 term
    sum = fused_mul_add(g, g, sum);                                    // s = s + g²
    const T denom = square_root(sum) + s.eps;                          // √s + eps
    p = fused_mul_add(-s.clr, g / denom, p);                           // p = p − clr·g/(√s + eps)
  }
};

}  // namespace rules
FUSEDOPT_NAMESPACE_END
