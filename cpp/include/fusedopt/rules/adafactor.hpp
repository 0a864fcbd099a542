// Adafactor, the math of one element (Shazeer & Stern 2018, "Adafactor: Adaptive Learning Rates with
// Sublinear Memory Cost"), as torch.optim.Adafactor 2.13 computes it:
//
//   g   = ±grad (− if maximize);  β̂ = 1 − t^decay (so 1 − β̂ = t^decay);  ρ = min(lr, 1/√t)
//   α   = max(eps2, RMS(p)) · ρ                                   RMS(p) before the weight decay
//   p   = (1 − lr·wd)·p
//   ≥ 2-D p, per matrix of the last two dims (rows i, columns j):
//     R_i = lerp(R_i, mean_j g², 1 − β̂) ;  C_j = lerp(C_j, mean_i g², 1 − β̂)
//     V̂_ij = (R_i·C_j) / max(mean_i R_i, eps1)      (computed as 1/√V̂ = 1/√(R_i/mean) · 1/√C_j)
//   ≤ 1-D p:  V̂ = lerp(V̂, g², 1 − β̂)
//   U   = rsqrt(max(V̂, eps1²))·g ;  p = p − α/max(1, RMS(U)/d) · U   RMS(U) per tensor
//
// The reductions (row and column means, RMS(p), RMS(U)) come from the CPU driver (cpu/adafactor.hpp)
// in fixed tiles and lanes, so every thread count and ISA gives the same bits; this header holds what
// one element computes.
#pragma once
#include "../common.hpp"

FUSEDOPT_NAMESPACE_BEGIN
namespace rules {

template <typename T>
struct AdafactorScalars {
  FUSEDOPT_SCALARS(grad_sign,          // −1 if maximize, else 1
                   one_minus_beta2,    // t^decay, the weight of the new squares
                   eps1,               // floor of the mean row factor (eps[0], or the dtype's epsilon)
                   eps1_square,        // floor of V̂
                   inverse_eps1,       // 1/eps1 (inf for eps1 = 0): the cap of 1/√V̂
                   decay,              // 1 − lr·wd
                   rho,                // min(lr, 1/√t)
                   eps2,               // floor of RMS(p)
                   d)                  // clipping threshold of RMS(U)
};

struct Adafactor {
  static constexpr const char* name = "adafactor";
  template <typename U> using Scalars = AdafactorScalars<U>;

  template <typename T>
  FUSEDOPT_HD static T square(T grad, const AdafactorScalars<T>& s) {
    const T g = s.grad_sign * grad;
    return g * g;
  }

  // A running factor or second moment, lerp toward the new mean square (torch's lerp_).
  template <typename T>
  FUSEDOPT_HD static T second_moment(T old, T mean_square, const AdafactorScalars<T>& s) {
    return lerp(old, mean_square, s.one_minus_beta2);
  }

  // A factored element's 1/√V̂ = 1/√(R_i/max(mean R, eps1)) · 1/√C_j: the row's and the column's
  // factors, each computed once per step (O(rows + cols)), so that an element costs two multiplies
  // instead of two divisions and a square root. The floor max(V̂, eps1²) becomes min(·, 1/eps1) on
  // the product (a NaN stays NaN); the result differs from rsqrt(max(R_i·C_j/mean, eps1²)) by rounding only.
  template <typename T>
  FUSEDOPT_HD static T inverse_root(T x) {
    return T(1) / square_root(x);
  }
  template <typename T>
  FUSEDOPT_HD static T row_scale(T row, T row_mean_floor) {
    return inverse_root(row / row_mean_floor);
  }
  template <typename T>
  FUSEDOPT_HD static T factored_update(T grad, T row_scale, T col_scale, const AdafactorScalars<T>& s) {
    const T scale = row_scale * col_scale;
    return (scale > s.inverse_eps1 ? s.inverse_eps1 : scale) * (s.grad_sign * grad);
  }

  // A vector's U = rsqrt(max(V̂, eps1²))·g (torch: clamp_, rsqrt_, mul_ by the gradient).
  template <typename T>
  FUSEDOPT_HD static T update(T grad, T estimate, const AdafactorScalars<T>& s) {
    const T floored = estimate < s.eps1_square ? s.eps1_square : estimate;  // clamp_(min=): a NaN stays
    return inverse_root(floored) * (s.grad_sign * grad);
  }

  // p = (1 − lr·wd)·p − step·U, step = α/max(1, RMS(U)/d) for the whole tensor.
  template <typename T>
  FUSEDOPT_HD static T write(T p, T u, T step, const AdafactorScalars<T>& s) {
    return fused_mul_add(-step, u, s.decay * p);
  }

  // The per-tensor step size from ‖p‖ and ‖U‖, in double as torch computes it on the host (with
  // Python's max, where a NaN norm loses to the floor).
  FUSEDOPT_HD static double step_size(double p_norm, double u_norm, double numel, const AdafactorScalars<double>& s) {
    const double rms_p = p_norm / square_root(numel);
    const double alpha = (rms_p > s.eps2 ? rms_p : s.eps2) * s.rho;
    const double clip = u_norm / (square_root(numel) * s.d);
    return alpha / (clip > 1.0 ? clip : 1.0);
  }
};

}  // namespace rules
FUSEDOPT_NAMESPACE_END
