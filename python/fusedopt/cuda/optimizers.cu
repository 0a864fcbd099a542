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
__global__ void step(FUSEDOPT_CHUNK_PARAMS, const typename Rule::template Scalars<T> scalars) {
  for_each_element<Rule, T>(FUSEDOPT_CHUNK_TABLE, scalars);
}

}  // namespace cuda
}  // namespace fusedopt
