#include "rule_table.hpp"

#include <cstring>
#include <utility>

namespace py = pybind11;

namespace fusedopt {
namespace {

template <template <unsigned> class Family, unsigned... Flags>
RuleDescription describe(const char* cpp_name, std::integer_sequence<unsigned, Flags...>) {
  using Info = rules::RuleInfo<Family>;
  using S32 = typename Family<0>::template Scalars<float>;
  using S64 = typename Family<0>::template Scalars<double>;
  constexpr int n_fields = count_names(S32::field_names);
  static_assert(sizeof(S32) == n_fields * sizeof(float) && sizeof(S64) == n_fields * sizeof(double),
                "Scalars<T> holds exactly its named fields");
  static_assert(n_fields <= 32, "at most 32 scalar fields");
  static_assert(Info::n_variants <= kMaxVariants, "too many flags");
  RuleDescription d{Family<0>::name, cpp_name, Family<0>::flags, Family<0>::slots, S32::field_names,
                    Info::n_variants, n_fields, {}, rules::NormCount<Family<0>>::value >= 0, {}};
  ((d.present[Flags] = Family<Flags>::present), ...);
  ((d.norms[Flags] = rules::NormCount<Family<Flags>>::value), ...);
  return d;
}

#define FUSEDOPT_DESCRIBE(Rule) \
  describe<rules::Rule>(#Rule, std::make_integer_sequence<unsigned, rules::RuleInfo<rules::Rule>::n_variants>{}),

}  // namespace

const std::vector<RuleDescription>& rule_table() {
  static const std::vector<RuleDescription> table = {FUSEDOPT_OPTIMIZERS(FUSEDOPT_DESCRIBE)};
  return table;
}

int lists_in_use(const RuleDescription& rule, int variant) { return rules::popcount(rule.present[variant]); }

const RuleDescription& checked_rule(int rule, int variant, int n_lists) {
  const auto& table = rule_table();
  if (rule < 0 || rule >= static_cast<int>(table.size()))
    throw py::value_error("rule: expected an index below " + std::to_string(table.size()) + ", got " +
                          std::to_string(rule));
  const RuleDescription& r = table[static_cast<size_t>(rule)];
  if (variant < 0 || variant >= r.n_variants)
    throw py::value_error(std::string(r.name) + ": variant " + std::to_string(variant) + " does not exist (" +
                          std::to_string(r.n_variants) + " variants)");
  if (n_lists != lists_in_use(r, variant))
    throw py::value_error(std::string(r.name) + ": variant " + std::to_string(variant) + " updates " +
                          std::to_string(lists_in_use(r, variant)) + " lists, got " + std::to_string(n_lists));
  return r;
}

ScalarBuffer convert_scalars(const RuleDescription& rule, DType dtype, py::handle scalars) {
  char* data = nullptr;
  Py_ssize_t size = 0;
  if (!PyBytes_Check(scalars.ptr()) || PyBytes_AsStringAndSize(scalars.ptr(), &data, &size) != 0)
    throw py::type_error(std::string(rule.name) + ": scalars must be bytes (the rule's fields as doubles)");
  if (size != static_cast<Py_ssize_t>(rule.n_fields * sizeof(double)))
    throw py::value_error(std::string(rule.name) + ": expected " + std::to_string(rule.n_fields) +
                          " scalars (" + rule.scalars + "), got " + std::to_string(size / sizeof(double)));
  return scalars_of_values(rule, dtype, data);
}

ScalarBuffer scalars_of_values(const RuleDescription& rule, DType dtype, const void* values) {
  ScalarBuffer out{};
  double fields[32];
  std::memcpy(fields, values, static_cast<size_t>(rule.n_fields) * sizeof(double));
  if (dtype == kFloat32) {
    float* f = reinterpret_cast<float*>(out.bytes);
    for (int j = 0; j < rule.n_fields; ++j) f[j] = static_cast<float>(fields[j]);
  } else {
    std::memcpy(out.bytes, fields, static_cast<size_t>(rule.n_fields) * sizeof(double));
  }
  return out;
}

}  // namespace fusedopt
