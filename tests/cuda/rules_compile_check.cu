// Compiled by .ci/run with nvcc --ptx (no GPU needed): the rules headers must stay device-compilable
// (DESIGN.md §1), so the CUDA backend can include them as they are.
#include "fusedopt/rules/adam.hpp"
#include "fusedopt/rules/sgd.hpp"
#include "fusedopt/rules/adagrad.hpp"
#include "fusedopt/rules/rmsprop.hpp"
#include "fusedopt/rules/init.hpp"
using namespace fusedopt;
__global__ void rules_compile_check(float* p, const float* g, float* m, float* v, rules::AdamScalars<float> s, InitHyper h, float* out) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  rules::adam_element<float, false>(p[i], g[i], m[i], v[i], v[i], s);
  float vals[4];
  rules::init_block<float>(h, i, vals);
  double d[4];
  rules::init_block<double>(h, i, d);
  out[i] = vals[0] + float(d[0]) + rules::to_float16_bits(vals[1]);
}
