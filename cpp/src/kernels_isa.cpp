// Compiled once per instruction set (CMakeLists.txt: fusedopt_isa_object), each time inside its
// own inline namespace FUSEDOPT_ISA_NAMESPACE. Only plain data and function pointers leave it.
#include <utility>

#include "kernels.hpp"

#include "fusedopt/cpu/adafactor.hpp"
#include "fusedopt/cpu/apply.hpp"
#include "fusedopt/cpu/grad_norm.hpp"
#include "fusedopt/cpu/mixed.hpp"
#include "fusedopt/cpu/stream.hpp"

#define FUSEDOPT_CAT_(a, b) a##b
#define FUSEDOPT_CAT(a, b) FUSEDOPT_CAT_(a, b)
#define FUSEDOPT_STR_(a) #a
#define FUSEDOPT_STR(a) FUSEDOPT_STR_(a)

namespace fusedopt {
namespace {

// cpu::apply for every variant of one rule, in both types.
template <template <unsigned> class Family, unsigned... Flags>
RuleKernels rule_kernels(std::integer_sequence<unsigned, Flags...>) {
  static_assert(sizeof...(Flags) <= kMaxVariants, "a rule has more flags than the kernel table holds");
  RuleKernels k{};
  ((k.variants[kFloat32][Flags] = &cpu::apply<Family, Flags, float>), ...);
  ((k.variants[kFloat64][Flags] = &cpu::apply<Family, Flags, double>), ...);
  ((k.mixed[Flags] = &cpu::apply_mixed<Family, Flags>), ...);
  return k;
}

#define FUSEDOPT_RULE_KERNELS(Rule)                 \
  rule_kernels<rules::Rule>(std::make_integer_sequence<unsigned, rules::RuleInfo<rules::Rule>::n_variants>{}),

}  // namespace

const KernelTable& FUSEDOPT_CAT(kernel_table_, FUSEDOPT_ISA_NAMESPACE)() {
  static const KernelTable table = {
      FUSEDOPT_STR(FUSEDOPT_ISA_NAMESPACE) + 4,  // drop the "isa_" prefix
      {FUSEDOPT_OPTIMIZERS(FUSEDOPT_RULE_KERNELS)},
      {&cpu::stream_adam_pattern<float>, &cpu::stream_adam_pattern<double>},
      {&cpu::stream_write<float>, &cpu::stream_write<double>},
      {&cpu::init_fill<OutKind::Float32>, &cpu::init_fill<OutKind::Float64>, &cpu::init_fill<OutKind::Float16>,
       &cpu::init_fill<OutKind::BFloat16>},
      {&cpu::adafactor<float>, &cpu::adafactor<double>,
       &cpu::adafactor_stored<cpu::adafactor_detail::Stored16<true>>,
       &cpu::adafactor_stored<cpu::adafactor_detail::Stored16<false>>},
      {&cpu::grad_norm<kFloat32>, &cpu::grad_norm<kFloat64>, &cpu::grad_norm<kBFloat16>, &cpu::grad_norm<kFloat16>},
  };
  return table;
}

}  // namespace fusedopt
