// The generic CPU driver: one rule variant over a tensor list, every tensor's elements split over
// the threads (tensor_list.hpp), the inner loop SIMD over a chunk. Slot k of the rule's element is
// list k of the view when the variant uses it, otherwise a local the rule never reads.
#pragma once
#include <cmath>
#include <utility>
#include <vector>

#include "../optimizers.hpp"
#include "tensor_list.hpp"

FUSEDOPT_NAMESPACE_BEGIN
namespace cpu {

struct Absent {};  // the pointer type of a slot the variant does not use

template <typename T>
inline T& at(T* p, int64_t i, T&) { return p[i]; }
template <typename T>
inline T& at(Absent*, int64_t, T& unused) { return unused; }

// The param's first element of a range: the array the SIMD loop lines its vectors up with (slot 0).
template <typename T, typename... Rest>
inline const void* param_at(int64_t begin, T* param, Rest*...) { return param + begin; }

// f(i) for i in [begin, end): lined up with the param's cache lines (simd_for_lined), or, LineUp false,
// plain simd_for: the 16-bit paths' buffers, aligned already, whose loops over a constant count (16)
// must stay straight-line code (the bfloat16 Adam step was 3x slower with the peel in that loop).
template <bool LineUp, typename T, typename F, typename... P>
inline void simd_over(int64_t begin, int64_t end, F&& f, P*... p) {
  if constexpr (LineUp) simd_for_lined(begin, end, f, param_at(begin, p...), sizeof(T));
  else simd_for(begin, end, f);
}

template <class Rule, typename T, bool LineUp = true, typename... P>
inline void update_range(int64_t begin, int64_t end, const typename Rule::template Scalars<T>& scalars, P*... p) {
  // A local copy of the scalars, which the loop keeps in registers: the caller's struct may alias the
  // lists (T stores, and vector stores that alias anything), so read through the reference every
  // scalar would be reloaded per vector of elements.
  const auto s = scalars;
  // always_inline: a call per element would keep the loop from being vectorized (GCC left NAdam's
  // element, the largest, as a call: 26 % of the bandwidth instead of 90+ %).
  simd_over<LineUp, T>(begin, end, [&](int64_t i) __attribute__((always_inline)) {
    T unused = T(0);
    Rule::element(at<T>(p, i, unused)..., s);
  }, p...);
}

template <class Rule, typename T, int K>
inline auto slot_pointer(const TensorListView& list, int64_t t) {
  if constexpr ((Rule::present >> K) & 1u) {
    return slot<T>(list, rules::list_index(Rule::present, K), t);
  } else {
    return static_cast<Absent*>(nullptr);
  }
}

// --- rules with per-tensor norms (rules::NormCount >= 0: LAMB, LARS) -------------------------------

template <class Rule, typename T, bool LineUp = true, typename... P>
inline void update_range_scaled(int64_t begin, int64_t end, const typename Rule::template Scalars<T>& scalars,
                                T factor, P*... p) {
  const auto s = scalars;  // kept in registers, as in update_range
  simd_over<LineUp, T>(begin, end, [&](int64_t i) __attribute__((always_inline)) {
    T unused = T(0);
    Rule::element(at<T>(p, i, unused)..., s, factor);
  }, p...);
}

constexpr int64_t kNormChunk = 4096;  // elements per partial sum: fixed, so the sums never depend on the threads
constexpr int kNormLanes = 16;        // element j of a chunk goes to lane j % 16, on every ISA

// The squared-norm terms of elements [begin, end) of a chunk, added into 16 lanes per norm: element j
// of the chunk goes to lane j % 16 (begin − the chunk's start is a multiple of 16), each lane in order,
// in double. Two norms: what LAMB and LARS need.
template <class Rule, typename T, typename... P>
inline void norm_lanes(int64_t begin, int64_t end, const typename Rule::template Scalars<T>& s, double* lane0,
                       double* lane1, P*... p) {
  static_assert(rules::NormCount<Rule>::value == 2, "norm_lanes sums two norms");
  int64_t i = begin;
  for (; i + kNormLanes <= end; i += kNormLanes) {
#pragma omp simd
    for (int l = 0; l < kNormLanes; ++l) {
      T unused = T(0), a, b;
      Rule::norm_terms(at<T>(p, i + l, unused)..., s, a, b);
      lane0[l] += static_cast<double>(a);
      lane1[l] += static_cast<double>(b);
    }
  }
  for (int l = 0; i < end; ++i, ++l) {
    T unused = T(0), a, b;
    Rule::norm_terms(at<T>(p, i, unused)..., s, a, b);
    lane0[l] += static_cast<double>(a);
    lane1[l] += static_cast<double>(b);
  }
}

// A chunk's two sums, out[0] and out[1]: the lanes added 0..15 (the same bits whatever the vector width).
inline void sum_lanes(const double* lane0, const double* lane1, double* out) {
  double sum0 = 0.0, sum1 = 0.0;
  for (int l = 0; l < kNormLanes; ++l) {
    sum0 += lane0[l];
    sum1 += lane1[l];
  }
  out[0] = sum0;
  out[1] = sum1;
}

// The norm chunks of a tensor list: kNormChunk elements from the start of each tensor, numbered in
// tensor order. Partial sums per chunk, added in chunk order, never depend on the threads.
struct NormChunks {
  std::vector<int64_t> first_chunk;   // per tensor, and the total at the end
  std::vector<int64_t> chunk_tensor;  // per chunk

  explicit NormChunks(const TensorListView& list) : first_chunk(static_cast<size_t>(list.n_tensors) + 1, 0) {
    const int64_t n = list.n_tensors;
    for (int64_t t = 0; t < n; ++t)
      first_chunk[t + 1] = first_chunk[t] + (list.offsets[t + 1] - list.offsets[t] + kNormChunk - 1) / kNormChunk;
    chunk_tensor.resize(static_cast<size_t>(first_chunk[n]));
    for (int64_t t = 0; t < n; ++t)
      for (int64_t c = first_chunk[t]; c < first_chunk[t + 1]; ++c) chunk_tensor[c] = t;
  }
  int64_t count() const { return first_chunk.back(); }

  // The rule's factor for tensor t from the chunks' partial sums (N per chunk), added in chunk order.
  template <class Rule, int N, typename S>
  double tensor_factor(int64_t t, const std::vector<double>& partial, const S& s) const {
    double norms[N] = {};
    for (int64_t c = first_chunk[t]; c < first_chunk[t + 1]; ++c)
      for (int k = 0; k < N; ++k) norms[k] += partial[static_cast<size_t>(c) * N + k];
    for (int k = 0; k < N; ++k) norms[k] = std::sqrt(norms[k]);
    return Rule::tensor_factor(norms, s);
  }

  // body(c, t, begin, end) for every chunk c (of tensor t, elements [begin, end) of it), over the threads.
  template <typename Body>
  void for_each(const TensorListView& list, Body&& body) const {
    const auto one_chunk = [&](int64_t c) {
      const int64_t t = chunk_tensor[c];
      const int64_t begin = (c - first_chunk[t]) * kNormChunk;
      const int64_t size = list.offsets[t + 1] - list.offsets[t];
      body(c, t, begin, begin + kNormChunk < size ? begin + kNormChunk : size);
    };
    const int64_t chunks = count();
    if (list.offsets[list.n_tensors] < list.serial_below || list.num_threads <= 1) {
      for (int64_t c = 0; c < chunks; ++c) one_chunk(c);
      return;
    }
    const int64_t wanted = list.num_threads * kChunksPerThread;
    const int64_t per_claim = chunks > wanted ? (chunks + wanted - 1) / wanted : 1;
    parallel_for((chunks + per_claim - 1) / per_claim, list.num_threads, [&](int64_t k) {
      for (int64_t c = k * per_claim; c < chunks && c < (k + 1) * per_claim; ++c) one_chunk(c);
    });
  }
};

// Two passes: every tensor's norms (chunks split over the threads, partial sums added in chunk order),
// the rule's factor per tensor, then the update. A variant without norms (n_norms 0) takes factor 1
// in one pass.
template <class Rule, typename T, int... K>
void apply_with_norms(const TensorListView& list, const typename Rule::template Scalars<T>& s) {
  constexpr int N = rules::NormCount<Rule>::value;
  const int64_t n = list.n_tensors;
  std::vector<T> factor(static_cast<size_t>(n), T(1));
  if constexpr (N > 0) {
    const NormChunks chunks(list);
    std::vector<double> partial(static_cast<size_t>(chunks.count()) * N);
    chunks.for_each(list, [&](int64_t c, int64_t t, int64_t begin, int64_t end) {
      double lane0[kNormLanes] = {}, lane1[kNormLanes] = {};
      norm_lanes<Rule, T>(begin, end, s, lane0, lane1, slot_pointer<Rule, T, K>(list, t)...);
      sum_lanes(lane0, lane1, &partial[static_cast<size_t>(c) * N]);
    });
    for (int64_t t = 0; t < n; ++t) factor[t] = static_cast<T>(chunks.tensor_factor<Rule, N>(t, partial, s));
  }
  for_each_range(list, [&](int64_t t, int64_t begin, int64_t end) {
    update_range_scaled<Rule, T>(begin, end, s, factor[t], slot_pointer<Rule, T, K>(list, t)...);
  });
}

template <class Rule, typename T, int... K>
void apply_slots(const TensorListView& list, const void* scalars, std::integer_sequence<int, K...>) {
  const auto s = *static_cast<const typename Rule::template Scalars<T>*>(scalars);
  if constexpr (rules::NormCount<Rule>::value >= 0) {
    apply_with_norms<Rule, T, K...>(list, s);
  } else {
    for_each_range(list, [&](int64_t t, int64_t begin, int64_t end) {
      update_range<Rule, T>(begin, end, s, slot_pointer<Rule, T, K>(list, t)...);
    });
  }
}

// One step of Rule (a variant, e.g. rules::Adam<1>) in type T; scalars points to its Scalars<T>.
template <template <unsigned> class Family, unsigned Flags, typename T>
void apply(const TensorListView& list, const void* scalars) {
  apply_slots<Family<Flags>, T>(list, scalars,
                                std::make_integer_sequence<int, rules::RuleInfo<Family>::n_slots>{});
}

}  // namespace cpu
FUSEDOPT_NAMESPACE_END
