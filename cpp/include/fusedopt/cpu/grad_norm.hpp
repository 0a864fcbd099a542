// The gradients' global L2 norm and whether they are all finite, in one read-only pass: what loss
// scaling (skip a step with an inf or NaN gradient) and clip_grad_norm_-style clipping need before a
// step. The sums are taken in the norm chunks of the two-pass rules (apply.hpp: 16 lanes in double,
// chunks added in order), so the result is the same for any thread count and ISA.
#pragma once
#include <vector>

#include "apply.hpp"
#include "mixed.hpp"

FUSEDOPT_NAMESPACE_BEGIN
namespace cpu {

// out[0]: the sum of the squares of every element of list 0 (in double); out[1]: 0 when every element
// is finite, else NaN (x − x is NaN exactly for an inf or a NaN x).
template <DType D>
void grad_norm(const TensorListView& list, double* out) {
  using S = Stored<D>;
  const NormChunks chunks(list);
  std::vector<double> partial(static_cast<size_t>(chunks.count()) * 2);
  chunks.for_each(list, [&](int64_t c, int64_t t, int64_t begin, int64_t end) {
    const auto* g = slot<const typename S::type>(list, 0, t);
    double squares[kNormLanes] = {}, nonfinite[kNormLanes] = {};
    int64_t i = begin;
    for (; i + kNormLanes <= end; i += kNormLanes) {
#pragma omp simd
      for (int l = 0; l < kNormLanes; ++l) {
        const double x = static_cast<double>(S::load(g[i + l]));
        squares[l] += x * x;
        nonfinite[l] += x - x;
      }
    }
    for (int l = 0; i < end; ++i, ++l) {
      const double x = static_cast<double>(S::load(g[i]));
      squares[l] += x * x;
      nonfinite[l] += x - x;
    }
    double sum = 0.0, bad = 0.0;
    for (int l = 0; l < kNormLanes; ++l) {
      sum += squares[l];
      bad += nonfinite[l];
    }
    partial[static_cast<size_t>(c) * 2] = sum;
    partial[static_cast<size_t>(c) * 2 + 1] = bad;
  });
  double sum = 0.0, bad = 0.0;
  for (int64_t c = 0; c < chunks.count(); ++c) {
    sum += partial[static_cast<size_t>(c) * 2];
    bad += partial[static_cast<size_t>(c) * 2 + 1];
  }
  out[0] = sum;
  out[1] = bad;
}

}  // namespace cpu
FUSEDOPT_NAMESPACE_END
