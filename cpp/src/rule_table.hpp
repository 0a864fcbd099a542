// What the bindings know of each registered rule (FUSEDOPT_OPTIMIZERS), independent of the ISA.
#pragma once
#include <pybind11/pybind11.h>

#include <string>
#include <vector>

#include "kernels.hpp"

namespace fusedopt {

struct RuleDescription {
  const char* name;         // "adam"
  const char* cpp_name;     // "Adam": the CUDA backend instantiates fusedopt::rules::Adam<flags>
  const char* flags;        // "amsgrad"
  const char* slots;        // "param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq"
  const char* scalars;      // the Scalars<T> fields, in order
  int n_variants;
  int n_fields;
  unsigned present[kMaxVariants];  // slots each variant uses
  bool per_tensor_norms;           // a two-pass rule (LAMB, LARS)
  int norms[kMaxVariants];         // per variant: rules::NormCount (-1 elementwise, 0 a two-pass rule's one-pass variant)
};

const std::vector<RuleDescription>& rule_table();

// The rule's scalars for type T, from n_fields doubles (bytes); checked. Up to 32 fields.
struct ScalarBuffer {
  alignas(16) unsigned char bytes[32 * sizeof(double)];
};
ScalarBuffer convert_scalars(const RuleDescription& rule, DType dtype, pybind11::handle scalars);
// The same from rule.n_fields doubles in memory (unchecked).
ScalarBuffer scalars_of_values(const RuleDescription& rule, DType dtype, const void* values);

// The rule and variant, checked against the number of lists a call passes (params and grads included).
const RuleDescription& checked_rule(int rule, int variant, int n_lists);

int lists_in_use(const RuleDescription& rule, int variant);

}  // namespace fusedopt
