// Compiled by .ci/run with nvcc --ptx (no GPU needed): the rules headers and the generic kernel must
// stay device-compilable under nvcc too (DESIGN.md §1; NVRTC is checked by tests/test_cuda_nvrtc.py).
#include "fusedopt/cuda/multi_tensor.cuh"
#include "fusedopt/optimizers.hpp"
#include "fusedopt/rules/init.hpp"
using namespace fusedopt;

template <class Rule, typename T>
__global__ void rule_check(FUSEDOPT_CHUNK_PARAMS, const typename Rule::template Scalars<T> s) {
  cuda::for_each_element<Rule, T>(FUSEDOPT_CHUNK_TABLE, s);
}
template __global__ void rule_check<rules::Adam<0>, float>(FUSEDOPT_CHUNK_PARAMS, const rules::AdamScalars<float>);
template __global__ void rule_check<rules::Adam<1>, double>(FUSEDOPT_CHUNK_PARAMS, const rules::AdamScalars<double>);
template __global__ void rule_check<rules::Sgd<7>, float>(FUSEDOPT_CHUNK_PARAMS, const rules::SgdScalars<float>);
template __global__ void rule_check<rules::Rmsprop<3>, float>(FUSEDOPT_CHUNK_PARAMS, const rules::RmspropScalars<float>);
template __global__ void rule_check<rules::Adagrad<0>, double>(FUSEDOPT_CHUNK_PARAMS, const rules::AdagradScalars<double>);

__global__ void init_check(InitHyper h, float* out) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  float vals[4];
  rules::init_block<float>(h, i, vals);
  double d[4];
  rules::init_block<double>(h, i, d);
  out[i] = vals[0] + float(d[0]) + rules::to_float16_bits(vals[1]);
}
