// Adadelta, one element. torch.optim.Adadelta semantics (Zeiler 2012):
//   https://pytorch.org/docs/stable/generated/torch.optim.Adadelta.html
//
//   g  = ±grad (− if maximize) + wd·p
//   v  = ρ·v + (1 − ρ)·g²                           running mean of g² (square_avg)
//   Δ  = √(u + eps) / √(v + eps) · g                the step, in the units of p
//   u  = ρ·u + (1 − ρ)·Δ²                           running mean of Δ² (acc_delta)
//   p  = p − lr·Δ
#pragma once
#include "../common.hpp"

FUSEDOPT_NAMESPACE_BEGIN
namespace rules {

template <typename T>
struct AdadeltaScalars {
  FUSEDOPT_SCALARS(grad_sign,                 // −1 if maximize, else 1
                   weight_decay,
                   rho, one_minus_rho,
                   eps,
                   lr)
};

template <unsigned Flags>  // no flags: one variant
struct Adadelta {
  static constexpr const char* name = "adadelta";
  static constexpr const char* flags = "";
  static constexpr const char* slots = "param, grad, square_avg, acc_delta";
  static constexpr unsigned present = 0b1111u;
  template <typename U> using Scalars = AdadeltaScalars<U>;

  template <typename T>
  FUSEDOPT_HD static void element(T& p, T grad, T& v, T& u, const AdadeltaScalars<T>& s) {
    const T g = with_l2(s.weight_decay, p, s.grad_sign * grad);       // gradient + L2 term
    v = fused_mul_add(s.rho, v, s.one_minus_rho * g * g);             // v = ρ·v + (1−ρ)·g²
    const T std = square_root(v + s.eps);                             // √(v + eps)
    const T delta = square_root(u + s.eps) / std * g;                 // Δ, in torch's order
    u = fused_mul_add(s.rho, u, s.one_minus_rho * delta * delta);     // u = ρ·u + (1−ρ)·Δ²
    p = fused_mul_add(-s.lr, delta, p);                               // p − lr·Δ
  }
};

}  // namespace rules
FUSEDOPT_NAMESPACE_END
