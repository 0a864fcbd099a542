// Adagrad, one element. torch.optim.Adagrad semantics:
//   https://pytorch.org/docs/stable/generated/torch.optim.Adagrad.html
//
//   clr = lr / (1 + (t − 1)·lr_decay)                 once per step, on the host
//   g   = ±grad (− if maximize) + wd·p
//   s   = s + g²                                       sum of squares (starts at initial_accumulator_value)
//   p   = p − clr · g / (√s + eps)
#pragma once
#include "../common.hpp"

namespace fusedopt {
// Hyperparameters as the user gives them (one step); plain data shared by every backend.
struct AdagradHyper {
  double lr, lr_decay, weight_decay, eps;
  long long step;  // t, counting from 1
  bool maximize;
};
}  // namespace fusedopt

FUSEDOPT_NAMESPACE_BEGIN
namespace rules {

template <typename T>
struct AdagradScalars {
  T grad_sign;  // −1 if maximize, else 1
  T weight_decay;
  T clr;        // decayed learning rate
  T eps;
};

#if !defined(FUSEDOPT_DEVICE_COMPILE)
template <typename T>
inline AdagradScalars<T> adagrad_scalars(const AdagradHyper& h) {
  AdagradScalars<T> s;
  s.grad_sign = h.maximize ? T(-1) : T(1);
  s.weight_decay = T(h.weight_decay);
  s.clr = T(h.lr / (1.0 + static_cast<double>(h.step - 1) * h.lr_decay));
  s.eps = T(h.eps);
  return s;
}
#endif

template <typename T>
FUSEDOPT_HD void adagrad_element(T& p, T grad, T& sum, const AdagradScalars<T>& s) {
  const T g = fused_mul_add(s.weight_decay, p, s.grad_sign * grad);  // gradient + L2 term
  sum = fused_mul_add(g, g, sum);                                    // s = s + g²
  const T denom = square_root(sum) + s.eps;                          // √s + eps
  p = fused_mul_add(-s.clr, g / denom, p);                           // p = p − clr·g/(√s + eps)
}

}  // namespace rules
FUSEDOPT_NAMESPACE_END
