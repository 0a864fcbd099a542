// The table of CPU kernels one instruction-set build exports, and the choice among them.
#pragma once
#include <string>
#include <vector>

#include "fusedopt/cpu/init.hpp"
#include "fusedopt/cpu/tensor_list.hpp"
#include "fusedopt/rules/adagrad.hpp"
#include "fusedopt/rules/adam.hpp"
#include "fusedopt/rules/rmsprop.hpp"
#include "fusedopt/rules/sgd.hpp"

namespace fusedopt {

enum DType : int { kFloat32 = 0, kFloat64 = 1 };

template <typename Hyper>
using Kernel = void (*)(const TensorListView&, const Hyper&);

// Indexed by DType.
struct KernelTable {
  const char* isa;
  Kernel<SgdHyper> sgd[2];
  Kernel<AdagradHyper> adagrad[2];
  Kernel<RmspropHyper> rmsprop[2];
  Kernel<AdamHyper> adam[2];
  Kernel<double> stream_adam_pattern[2];  // benchmarks' bandwidth ceiling
  Kernel<double> stream_write[2];         // the initializers' ceiling
  Kernel<InitHyper> init_fill[4];         // indexed by OutKind
};

// One per build of kernels_isa.cpp (see CMakeLists.txt).
const KernelTable& kernel_table_isa_baseline();
#if defined(FUSEDOPT_HAVE_X86_ISAS)
const KernelTable& kernel_table_isa_avx2();
const KernelTable& kernel_table_isa_avx512();
#endif

// The fastest table this CPU runs, unless FUSEDOPT_ISA or set_isa() chose another.
const KernelTable& active_kernels();
std::vector<std::string> available_isas();  // best first
void set_isa(const std::string& name);      // throws std::invalid_argument if not available

}  // namespace fusedopt
