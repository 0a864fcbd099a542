// Run-time choice of the instruction set: the best one the CPU (and OS) supports, or the one
// named by the FUSEDOPT_ISA environment variable / set_isa().
#include <cstdlib>
#include <stdexcept>

#include "kernels.hpp"

namespace fusedopt {
namespace {

std::vector<const KernelTable*> supported_tables() {
  std::vector<const KernelTable*> tables;
#if defined(FUSEDOPT_HAVE_X86_ISAS)
  __builtin_cpu_init();
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  const bool avx512 = avx2 && __builtin_cpu_supports("avx512f") &&
                      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
  if (avx512) tables.push_back(&kernel_table_isa_avx512());
  if (avx2) tables.push_back(&kernel_table_isa_avx2());
#endif
  tables.push_back(&kernel_table_isa_baseline());
  return tables;
}

const KernelTable* find_table(const std::string& name) {
  for (const KernelTable* t : supported_tables())
    if (name == t->isa) return t;
  return nullptr;
}

const KernelTable* initial_table() {
  const char* forced = std::getenv("FUSEDOPT_ISA");
  if (forced != nullptr && *forced != '\0') {
    if (const KernelTable* t = find_table(forced)) return t;
    // An unknown or unsupported name falls back to the best ISA; cpu_info() shows which ran.
  }
  return supported_tables().front();
}

const KernelTable*& active() {
  static const KernelTable* table = initial_table();
  return table;
}

}  // namespace

const KernelTable& active_kernels() { return *active(); }

std::vector<std::string> available_isas() {
  std::vector<std::string> names;
  for (const KernelTable* t : supported_tables()) names.emplace_back(t->isa);
  return names;
}

void set_isa(const std::string& name) {
  const KernelTable* t = find_table(name);
  if (t == nullptr) throw std::invalid_argument(name);
  active() = t;
}

bool use_avx512_bf16() {
#if defined(FUSEDOPT_HAVE_X86_ISAS)
  static const bool use = __builtin_cpu_supports("avx512bf16") && std::getenv("FUSEDOPT_NO_AVX512_BF16") == nullptr;
  return use;
#else
  return false;
#endif
}

}  // namespace fusedopt
