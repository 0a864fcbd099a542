// RMSprop, one element. torch.optim.RMSprop semantics:
//   https://pytorch.org/docs/stable/generated/torch.optim.RMSprop.html
//
//   g  = ±grad (− if maximize) + wd·p
//   v  = α·v + (1 − α)·g²                     running mean of g²
//   a  = α·a + (1 − α)·g ;  ṽ = v − a²        centered only; otherwise ṽ = v
//   b  = μ·b + g / (√ṽ + eps) ;  p = p − lr·b          if μ > 0
//   p  = p − lr · g / (√ṽ + eps)                        otherwise
#pragma once
#include "../common.hpp"

namespace fusedopt {
// Hyperparameters as the user gives them (one step); plain data shared by every backend.
struct RmspropHyper {
  double lr, alpha, eps, weight_decay, momentum;
  bool centered, maximize;
};
}  // namespace fusedopt

FUSEDOPT_NAMESPACE_BEGIN
namespace rules {

template <typename T>
struct RmspropScalars {
  T grad_sign;  // −1 if maximize, else 1
  T weight_decay;
  T alpha, one_minus_alpha;
  T eps;
  T momentum;
  T lr;
};

#if !defined(FUSEDOPT_DEVICE_COMPILE)
template <typename T>
inline RmspropScalars<T> rmsprop_scalars(const RmspropHyper& h) {
  RmspropScalars<T> s;
  s.grad_sign = h.maximize ? T(-1) : T(1);
  s.weight_decay = T(h.weight_decay);
  s.alpha = T(h.alpha);
  s.one_minus_alpha = T(1.0 - h.alpha);
  s.eps = T(h.eps);
  s.momentum = T(h.momentum);
  s.lr = T(h.lr);
  return s;
}
#endif

// square_avg = v, grad_avg = a (Centered), momentum_buffer = b (Momentum); unused ones are not touched.
template <typename T, bool Centered, bool Momentum>
FUSEDOPT_HD void rmsprop_element(T& p, T grad, T& square_avg, T& grad_avg, T& momentum_buffer,
                                 const RmspropScalars<T>& s) {
  const T g = fused_mul_add(s.weight_decay, p, s.grad_sign * grad);          // gradient + L2 term
  square_avg = fused_mul_add(s.alpha, square_avg, s.one_minus_alpha * g * g);  // v = α·v + (1−α)·g²
  T centered_square = square_avg;
  if (Centered) {
    grad_avg = fused_mul_add(s.alpha, grad_avg, s.one_minus_alpha * g);       // a = α·a + (1−α)·g
    // ṽ = v − a², deliberately not fused: with an exact a² the rounding error of v could make a
    // zero variance negative (and √ṽ NaN); rounded the same way as v, equal terms cancel to 0.
    centered_square = square_avg - grad_avg * grad_avg;
  }
  const T scaled = g / (square_root(centered_square) + s.eps);                // g / (√ṽ + eps)
  if (Momentum) {
    momentum_buffer = fused_mul_add(s.momentum, momentum_buffer, scaled);     // b = μ·b + g/(√ṽ+eps)
    p = fused_mul_add(-s.lr, momentum_buffer, p);
  } else {
    p = fused_mul_add(-s.lr, scaled, p);
  }
}

}  // namespace rules
FUSEDOPT_NAMESPACE_END
