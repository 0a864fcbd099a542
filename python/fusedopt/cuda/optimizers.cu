// Every optimizer on the GPU: one kernel template over the rules of fusedopt/optimizers.hpp, the same
// per-element math as the CPU's. The CUDA backend instantiates it by NVRTC name expression for each
// rule variant and type it launches, e.g. fusedopt::cuda::step<fusedopt::rules::Adam<1u>, float>:
// the flags are template arguments (no runtime branch, no registers spent on a variant not run) and
// the rule's Scalars<T> is the one scalar argument, passed by value.
#include "fusedopt/cuda/multi_tensor.cuh"
#include "fusedopt/optimizers.hpp"

namespace fusedopt {
namespace cuda {

template <class Rule, typename T>
__global__ void __launch_bounds__(kBlockThreads) step(FUSEDOPT_CHUNK_PARAMS, const typename Rule::template Scalars<T> scalars) {
  for_each_element<Rule, T>(FUSEDOPT_CHUNK_TABLE, scalars);
}

// The same step with its scalars read from device memory, which the host fills (from pinned memory,
// with the values it computes for an eager step) before each launch or graph replay: the kernel of a
// step captured in a CUDA graph (README, "CUDA graphs").
template <class Rule, typename T>
__global__ void __launch_bounds__(kBlockThreads) step_from_device(FUSEDOPT_CHUNK_PARAMS,
                                                                  const typename Rule::template Scalars<T>* scalars) {
  const typename Rule::template Scalars<T> s = *scalars;  // once, into registers: the stores may alias it
  for_each_element<Rule, T>(FUSEDOPT_CHUNK_TABLE, s);
}

// A two-pass rule (LAMB, LARS): two launches per step. first_pass over a table cut in the CPU's norm
// chunks (its state updates, the norms, each tensor's factor); then scaled_step over the usual table,
// each element with its tensor's factor (a variant without norms: scaled_step alone, factor 1).
template <class Rule, typename T>
__global__ void __launch_bounds__(kBlockThreads) first_pass(FUSEDOPT_CHUNK_PARAMS, const int* first_chunk, double* sums, unsigned* done, T* factors,
                           const typename Rule::template Scalars<T> scalars) {
  const ChunkTable c = FUSEDOPT_CHUNK_TABLE;
  norms_and_factors<Rule, T>(c, first_chunk, sums, done, factors, scalars,
                             [&](int chunk) { norm_chunk<Rule, T>(c, chunk, scalars, sums); });
}

// A step over lists stored in 16-bit types (and float32), each list's storage a template argument
// (0 float32, 2 bfloat16, 3 float16, in list order), e.g.
// fusedopt::cuda::mixed_step<fusedopt::rules::Adam<0u>, false, true, 2, 2, 2, 2>: elementwise rules.
template <class Rule, bool Master, bool Stochastic, int... D>
__global__ void __launch_bounds__(kBlockThreads) mixed_step(FUSEDOPT_CHUNK_PARAMS, unsigned long long seed, unsigned long long step,
                           const typename Rule::template Scalars<float> scalars) {
  for_each_element_mixed<Rule, Master, Stochastic, D...>(FUSEDOPT_CHUNK_TABLE, scalars, seed, step);
}

// A two-pass rule over 16-bit storage: first_pass_mixed stores nothing (its sums only, and the factors);
// scaled_step_mixed computes the first pass's state again from the stored values, then the update.
template <class Rule, bool Master, int... D>
__global__ void __launch_bounds__(kBlockThreads) first_pass_mixed(FUSEDOPT_CHUNK_PARAMS, const int* first_chunk, double* sums,
                                                                  unsigned* done, float* factors,
                                                                  const typename Rule::template Scalars<float> scalars) {
  const ChunkTable c = FUSEDOPT_CHUNK_TABLE;
  norms_and_factors<Rule, float>(c, first_chunk, sums, done, factors, scalars,
                                 [&](int chunk) { norm_chunk_mixed<Rule, Master, D...>(c, chunk, scalars, sums); });
}

template <class Rule, bool Master, bool Stochastic, int... D>
__global__ void __launch_bounds__(kBlockThreads) scaled_step_mixed(FUSEDOPT_CHUNK_PARAMS, const float* factors,
                                                                   unsigned long long seed, unsigned long long step,
                                                                   const typename Rule::template Scalars<float> scalars) {
  for_each_element_mixed<Rule, Master, Stochastic, D...>(FUSEDOPT_CHUNK_TABLE, scalars, seed, step, factors);
}

template <class Rule, typename T>
__global__ void __launch_bounds__(kBlockThreads) scaled_step(FUSEDOPT_CHUNK_PARAMS, const T* factors, const typename Rule::template Scalars<T> scalars) {
  for_each_element<Rule, T>(FUSEDOPT_CHUNK_TABLE, scalars, factors);
}

}  // namespace cuda
}  // namespace fusedopt

// --- benchmarks only: Adam's memory traffic through the same walker -------------------------------
//
// Reads param, grad, exp_avg and exp_avg_sq and writes three of them, as Adam does, with one add for
// arithmetic (it keeps every load live): benchmarks/bench_gpu.py's ceiling for the Adam step.
namespace fusedopt {
namespace cuda {

template <typename T>
struct AdamTrafficScalars {
  FUSEDOPT_SCALARS(unused)
};

struct AdamTraffic {
  static constexpr const char* slots = "param, grad, exp_avg, exp_avg_sq";
  static constexpr unsigned present = 0b1111u;
  template <typename U> using Scalars = AdamTrafficScalars<U>;

  template <typename T>
  FUSEDOPT_HD static void element(T& p, T g, T& m, T& v, const AdamTrafficScalars<T>&) {
    const T m_old = m;
    p = p + g;
    m = v;
    v = m_old;
  }
};

template <typename T>
__global__ void __launch_bounds__(kBlockThreads) adam_traffic(FUSEDOPT_CHUNK_PARAMS) {
  for_each_element<AdamTraffic, T>(FUSEDOPT_CHUNK_TABLE, AdamTrafficScalars<T>{});
}

}  // namespace cuda
}  // namespace fusedopt
