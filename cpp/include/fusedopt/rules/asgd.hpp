// ASGD, one element. torch.optim.ASGD semantics (Polyak & Juditsky 1992, averaged SGD with the decay
// of Bottou's implementation):  https://pytorch.org/docs/stable/generated/torch.optim.ASGD.html
//
//   g  = ±grad (− if maximize) + wd·p
//   p  = p·(1 − λ·η) − η·g                          η = lr / (1 + λ·lr·(t − 1))^α   (host)
//   ax = ax + μ·(p − ax)   when μ ≠ 1 ("averaging"), μ = 1 / max(1, t − 1 − t0)      (host)
//   ax = p                 otherwise (before t0: ax follows p)
// η and μ are torch's per-param "eta" and "mu", computed at the end of the previous step: the spec
// computes them from the step count.
#pragma once
#include "../common.hpp"

FUSEDOPT_NAMESPACE_BEGIN
namespace rules {

template <typename T>
struct AsgdScalars {
  FUSEDOPT_SCALARS(grad_sign,                 // −1 if maximize, else 1
                   weight_decay,
                   decay,                     // 1 − λ·η
                   eta,
                   mu)
};

// Flags bit 0: averaging (μ ≠ 1). Both variants keep ax.
template <unsigned Flags>
struct Asgd {
  static constexpr const char* name = "asgd";
  static constexpr const char* flags = "averaging";
  static constexpr const char* slots = "param, grad, ax";
  static constexpr bool averaging = Flags & 1u;
  static constexpr unsigned present = 0b111u;
  template <typename U> using Scalars = AsgdScalars<U>;

  template <typename T>
  FUSEDOPT_HD static void element(T& p, T grad, T& ax, const AsgdScalars<T>& s) {
    const T g = with_l2(s.weight_decay, p, s.grad_sign * grad);       // gradient + L2 term
    p = fused_mul_add(-s.eta, g, p * s.decay);                        // p·(1 − λη) − η·g
    ax = averaging ? fused_mul_add(s.mu, p - ax, ax) : p;             // the average of the iterates
  }
};

}  // namespace rules
FUSEDOPT_NAMESPACE_END
