// The registration list: every optimizer rule, by its C++ name (rules/<name>.hpp). The CPU kernel
// table and the bindings are generated from it; fusedopt._core.rules() describes each rule (flags,
// slots, scalar fields) to the Python specs, which match themselves against it, and the CUDA
// backend instantiates the generic kernel for each rule by name (python/fusedopt/cuda/optimizers.cu).
#pragma once
#include "rules/adadelta.hpp"
#include "rules/asgd.hpp"
#include "rules/adagrad.hpp"
#include "rules/adam.hpp"
#include "rules/adamax.hpp"
#include "rules/lamb.hpp"
#include "rules/lars.hpp"
#include "rules/lion.hpp"
#include "rules/nadam.hpp"
#include "rules/radam.hpp"
#include "rules/rmsprop.hpp"
#include "rules/rprop.hpp"
#include "rules/sgd.hpp"

#define FUSEDOPT_OPTIMIZERS(X) \
  X(Sgd) X(Adagrad) X(Rmsprop) X(Adam) X(Adamax) X(Radam) X(Adadelta) X(Rprop) X(Lion) X(Nadam) X(Asgd) X(Lamb) X(Lars)

FUSEDOPT_NAMESPACE_BEGIN
namespace rules {

// What every rule declares (see rules/adam.hpp): name, flags and slots as comma-separated names,
// `present` (bit k: slot k is used by this variant), Scalars<T> and a static element(...) taking
// one T& per slot (the grad by value) and the scalars.
template <template <unsigned> class Rule>
struct RuleInfo {
  static constexpr int n_flags = count_names(Rule<0>::flags);
  static constexpr int n_variants = 1 << n_flags;
  static constexpr int n_slots = count_names(Rule<0>::slots);
};

// A rule with per-tensor norms (LAMB, LARS) declares n_norms (2; 0 in a variant that needs none),
// norm_terms(slots..., s, a, b) for a first pass (the squared terms of the two norms, and any state
// that pass writes), tensor_factor(norms, s) per tensor, and element(slots..., s, factor) for the
// second pass. NormCount<Rule>::value is -1 for an elementwise rule.
template <class...>
struct Void { using type = void; };
template <class Rule, class = void>
struct NormCount { static constexpr int value = -1; };
template <class Rule>
struct NormCount<Rule, typename Void<decltype(Rule::n_norms)>::type> { static constexpr int value = Rule::n_norms; };

// Index of slot k among the slots a variant uses (its list in the kernel's arguments).
FUSEDOPT_HD constexpr int list_index(unsigned present, int k) {
  int n = 0;
  for (int j = 0; j < k; ++j) n += (present >> j) & 1u;
  return n;
}

FUSEDOPT_HD constexpr int popcount(unsigned bits) {
  int n = 0;
  for (; bits != 0; bits >>= 1) n += int(bits & 1u);
  return n;
}

}  // namespace rules
FUSEDOPT_NAMESPACE_END
