// The table of CPU kernels one instruction-set build exports, and the choice among them.
#pragma once
#include <string>
#include <vector>

#include "fusedopt/cpu/adafactor.hpp"
#include "fusedopt/cpu/init.hpp"
#include "fusedopt/cpu/mixed.hpp"
#include "fusedopt/cpu/tensor_list.hpp"
#include "fusedopt/optimizers.hpp"

namespace fusedopt {

template <typename Hyper>
using Kernel = void (*)(const TensorListView&, const Hyper&);

// One optimizer step: scalars points to the rule's Scalars<T> for the kernel's T.
using StepKernel = void (*)(const TensorListView&, const void* scalars);

// One step over lists stored in 16-bit types (cpu/mixed.hpp): scalars points to Scalars<float>.
using MixedKernel = void (*)(const TensorListView&, const MixedStorage&, const void* scalars);

// A reduction over list 0 into out (cpu/grad_norm.hpp).
using ReduceKernel = void (*)(const TensorListView&, double* out);

// One Adafactor step (cpu/adafactor.hpp).
using AdafactorKernel = void (*)(const AdafactorView&);

constexpr int kMaxVariants = 16;  // 4 flags per rule at most
#define FUSEDOPT_COUNT_ONE(Rule) +1
constexpr int kOptimizerCount = 0 FUSEDOPT_OPTIMIZERS(FUSEDOPT_COUNT_ONE);
#undef FUSEDOPT_COUNT_ONE

// Every compiled variant of one rule: in one type, indexed by [DType][flags] (float32, float64), and
// over 16-bit storage, by [flags].
struct RuleKernels {
  StepKernel variants[2][kMaxVariants];
  MixedKernel mixed[kMaxVariants];
};

struct KernelTable {
  const char* isa;
  RuleKernels optimizers[kOptimizerCount];  // in FUSEDOPT_OPTIMIZERS order
  Kernel<double> stream_adam_pattern[2];    // benchmarks' bandwidth ceiling
  Kernel<double> stream_write[2];           // the initializers' ceiling
  Kernel<InitHyper> init_fill[4];           // indexed by OutKind
  AdafactorKernel adafactor[4];             // its own walker (state not shaped like the params), by DType
  ReduceKernel grad_norm[4];                // the gradients' squared norm and finiteness, by DType
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
