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

FUSEDOPT_NAMESPACE_BEGIN
namespace rules {

template <typename T>
struct SgdScalars {
  FUSEDOPT_SCALARS(grad_sign,            // −1 if maximize, else 1
                   weight_decay,
                   momentum,             // μ
                   one_minus_dampening,
                   lr)
};

// Flags bit 0: momentum ≠ 0 (keeps momentum_buffer), bit 1: nesterov, bit 2: first step (b = g,
// the buffer's old contents are never read). Nesterov and first step only matter with momentum.
template <unsigned Flags>
struct Sgd {
  static constexpr const char* name = "sgd";
  static constexpr const char* flags = "momentum, nesterov, first_step";
  static constexpr const char* slots = "param, grad, momentum_buffer";
  static constexpr bool with_momentum = Flags & 1u;
  static constexpr bool nesterov = with_momentum && (Flags & 2u);
  static constexpr bool first_step = with_momentum && (Flags & 4u);
  static constexpr unsigned present = with_momentum ? 0b111u : 0b011u;
  template <typename U> using Scalars = SgdScalars<U>;

  template <typename T>
  FUSEDOPT_HD static void element(T& p, T grad, T& b, const SgdScalars<T>& s) {
    T g = with_l2(s.weight_decay, p, s.grad_sign * grad);  // gradient + L2 term
    if (with_momentum) {
      if (first_step) {
        b = g;                                                         // buffer starts at g
      } else {
        b = fused_mul_add(s.momentum, b, s.one_minus_dampening * g);  // b = μ·b + (1−d)·g
      }
      g = nesterov ? fused_mul_add(s.momentum, b, g) : b;             // look-ahead or heavy ball
    }
    p = fused_mul_add(-s.lr, g, p);                                    // p = p − lr·g
  }
};

}  // namespace rules
FUSEDOPT_NAMESPACE_END
