// SGD: plain / batch gradient descent, heavy-ball momentum, Nesterov. torch.optim.SGD semantics:
//   https://pytorch.org/docs/stable/generated/torch.optim.SGD.html
//
//   g  = ±grad (− if maximize) + wd·p
//   b  = g                                   first step with momentum
//   b  = μ·b + (1 − dampening)·g             later steps
//   g  = g + μ·b   (nesterov)   or   g = b   (heavy ball)      only if μ ≠ 0
//   p  = p − lr·g
//
// Textbook momentum v = μ·v − lr·g, p = p + v is the same algorithm for a constant lr (v = −lr·b).
#pragma once
#include "../common.hpp"

namespace fusedopt {
// Hyperparameters as the user gives them (one step); plain data shared by every backend.
struct SgdHyper {
  double lr, momentum, dampening, weight_decay;
  bool nesterov, maximize;
  bool first_step;  // the momentum buffer holds nothing yet: b = g
};
}  // namespace fusedopt

FUSEDOPT_NAMESPACE_BEGIN
namespace rules {

template <typename T>
struct SgdScalars {
  T grad_sign;       // −1 if maximize, else 1
  T weight_decay;
  T momentum;        // μ
  T one_minus_dampening;
  T lr;
};

#if !defined(FUSEDOPT_DEVICE_COMPILE)
template <typename T>
inline SgdScalars<T> sgd_scalars(const SgdHyper& h) {
  SgdScalars<T> s;
  s.grad_sign = h.maximize ? T(-1) : T(1);
  s.weight_decay = T(h.weight_decay);
  s.momentum = T(h.momentum);
  s.one_minus_dampening = T(1.0 - h.dampening);
  s.lr = T(h.lr);
  return s;
}
#endif

// Momentum: keep a buffer b. FirstStep: b = g (the buffer's old contents are never read).
template <typename T, bool Momentum, bool Nesterov, bool FirstStep>
FUSEDOPT_HD void sgd_element(T& p, T grad, T& b, const SgdScalars<T>& s) {
  T g = fused_mul_add(s.weight_decay, p, s.grad_sign * grad);     // gradient + L2 term
  if (Momentum) {
    if (FirstStep) {
      b = g;                                                       // buffer starts at g
    } else {
      b = fused_mul_add(s.momentum, b, s.one_minus_dampening * g);  // b = μ·b + (1−d)·g
    }
    g = Nesterov ? fused_mul_add(s.momentum, b, g) : b;           // look-ahead or heavy ball
  }
  p = fused_mul_add(-s.lr, g, p);                                  // p = p − lr·g
}

}  // namespace rules
FUSEDOPT_NAMESPACE_END
