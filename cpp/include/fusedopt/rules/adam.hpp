// Adam and AdamW, one element. torch.optim.Adam / torch.optim.AdamW semantics:
//   https://pytorch.org/docs/stable/generated/torch.optim.Adam.html
//   https://pytorch.org/docs/stable/generated/torch.optim.AdamW.html
//
//   g  = ±grad (− if maximize)
//   g  = g + wd·p                                   Adam  (L2 weight decay)
//   p  = p · (1 − lr·wd)                            AdamW (decoupled weight decay)
//   m  = β1·m + (1 − β1)·g                          first moment
//   v  = β2·v + (1 − β2)·g²                         second moment
//   v̂  = max(v̂, v)                                  amsgrad only; otherwise v̂ = v
//   p  = p − lr/(1 − β1^t) · m / (√v̂ / √(1 − β2^t) + eps)
//
// The last line is computed as p − α·m / (√v̂ + ε') with α = lr·√(1 − β2^t)/(1 − β1^t) and
// ε' = eps·√(1 − β2^t) (multiply numerator and denominator by √(1 − β2^t)): the same number up to
// rounding, with one division per element instead of two (division and square root bound the
// speed of this loop once the data sits in cache).
#pragma once
#include "../common.hpp"

namespace fusedopt {
enum class WeightDecay { L2, Decoupled };

// Hyperparameters as the user gives them (one step).
struct AdamHyper {
  double lr, beta1, beta2, eps, weight_decay;
  long long step;  // t, counting from 1
  bool amsgrad, maximize;
  WeightDecay weight_decay_mode;
};
}  // namespace fusedopt

FUSEDOPT_NAMESPACE_BEGIN
namespace rules {

// Everything the element update needs, computed once per step on the host.
template <typename T>
struct AdamScalars {
  T grad_sign;              // −1 if maximize, else 1
  T l2;                     // wd for Adam, 0 for AdamW
  T decay;                  // 1 − lr·wd for AdamW, 1 for Adam
  T beta1, one_minus_beta1;
  T beta2, one_minus_beta2;
  T step_size;              // α = lr·√(1 − β2^t) / (1 − β1^t)
  T eps;                    // ε' = eps·√(1 − β2^t)
};

#if !defined(FUSEDOPT_DEVICE_COMPILE)
template <typename T>
inline AdamScalars<T> adam_scalars(const AdamHyper& h) {
  const bool decoupled = h.weight_decay_mode == WeightDecay::Decoupled;
  const double t = static_cast<double>(h.step);
  AdamScalars<T> s;
  s.grad_sign = h.maximize ? T(-1) : T(1);
  s.l2 = decoupled ? T(0) : T(h.weight_decay);
  s.decay = decoupled ? T(1.0 - h.lr * h.weight_decay) : T(1);
  s.beta1 = T(h.beta1);
  s.one_minus_beta1 = T(1.0 - h.beta1);
  s.beta2 = T(h.beta2);
  s.one_minus_beta2 = T(1.0 - h.beta2);
  const double bias_correction1 = 1.0 - std::pow(h.beta1, t);
  const double bias_correction2_sqrt = std::sqrt(1.0 - std::pow(h.beta2, t));
  s.step_size = T(h.lr * bias_correction2_sqrt / bias_correction1);
  s.eps = T(h.eps * bias_correction2_sqrt);
  return s;
}
#endif

template <typename T, bool Amsgrad>
FUSEDOPT_HD void adam_element(T& p, T grad, T& m, T& v, T& v_max, const AdamScalars<T>& s) {
  const T g = fused_mul_add(s.l2, p, s.grad_sign * grad);          // gradient (+ L2 term)
  const T p_decayed = p * s.decay;                                  // decoupled weight decay
  m = fused_mul_add(s.beta1, m, s.one_minus_beta1 * g);             // first moment
  v = fused_mul_add(s.beta2, v, s.one_minus_beta2 * g * g);         // second moment
  T v_hat = v;
  if (Amsgrad) {
    v_max = max_propagating(v_max, v);                              // running max of v
    v_hat = v_max;
  }
  const T denom = square_root(v_hat) + s.eps;                       // √v̂ + ε'
  p = fused_mul_add(-s.step_size, m / denom, p_decayed);            // p − α·m/(√v̂ + ε')
}

}  // namespace rules
FUSEDOPT_NAMESPACE_END
