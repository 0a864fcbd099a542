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

FUSEDOPT_NAMESPACE_BEGIN
namespace rules {

template <typename T>
struct RmspropScalars {
  FUSEDOPT_SCALARS(grad_sign,     // −1 if maximize, else 1
                   weight_decay,
                   alpha, one_minus_alpha,
                   eps,
                   momentum,
                   lr)
};

// Flags bit 0: centered (keeps grad_avg), bit 1: momentum > 0 (keeps momentum_buffer).
template <unsigned Flags>
struct Rmsprop {
  static constexpr const char* name = "rmsprop";
  static constexpr const char* flags = "centered, momentum";
  static constexpr const char* slots = "param, grad, square_avg, grad_avg, momentum_buffer";
  static constexpr bool centered = Flags & 1u;
  static constexpr bool with_momentum = Flags & 2u;
  static constexpr unsigned present = 0b00111u | (centered ? 0b01000u : 0u) | (with_momentum ? 0b10000u : 0u);
  template <typename U> using Scalars = RmspropScalars<U>;

  // square_avg = v, grad_avg = a (centered), momentum_buffer = b (momentum); unused ones are not touched.
  template <typename T>
  FUSEDOPT_HD static void element(T& p, T grad, T& square_avg, T& grad_avg, T& momentum_buffer,
                                  const RmspropScalars<T>& s) {
    const T g = with_l2(s.weight_decay, p, s.grad_sign * grad);  // gradient + L2 term
    square_avg = fused_mul_add(s.alpha, square_avg, s.one_minus_alpha * g * g);  // v = α·v + (1−α)·g²
    T centered_square = square_avg;
    if (centered) {
      grad_avg = lerp(grad_avg, g, s.one_minus_alpha);                          // a = α·a + (1−α)·g (lerp)
      // ṽ = v − a², deliberately not fused: with an exact a² the rounding error of v could make a
      // zero variance negative (and √ṽ NaN); rounded the same way as v, equal terms cancel to 0.
      centered_square = square_avg - grad_avg * grad_avg;
    }
    const T scaled = g / (square_root(centered_square) + s.eps);                // g / (√ṽ + eps)
    if (with_momentum) {
      momentum_buffer = fused_mul_add(s.momentum, momentum_buffer, scaled);     // b = μ·b + g/(√ṽ+eps)
      p = fused_mul_add(-s.lr, momentum_buffer, p);
    } else {
      p = fused_mul_add(-s.lr, scaled, p);
    }
  }
};

}  // namespace rules
FUSEDOPT_NAMESPACE_END
