// Compiled once per instruction set (CMakeLists.txt: fusedopt_isa_object), each time inside its
// own inline namespace FUSEDOPT_ISA_NAMESPACE. Only plain data and function pointers leave it.
#include "kernels.hpp"

#include "fusedopt/cpu/adagrad.hpp"
#include "fusedopt/cpu/adam.hpp"
#include "fusedopt/cpu/rmsprop.hpp"
#include "fusedopt/cpu/sgd.hpp"
#include "fusedopt/cpu/stream.hpp"

#define FUSEDOPT_CAT_(a, b) a##b
#define FUSEDOPT_CAT(a, b) FUSEDOPT_CAT_(a, b)
#define FUSEDOPT_STR_(a) #a
#define FUSEDOPT_STR(a) FUSEDOPT_STR_(a)

namespace fusedopt {

const KernelTable& FUSEDOPT_CAT(kernel_table_, FUSEDOPT_ISA_NAMESPACE)() {
  static const KernelTable table = {
      FUSEDOPT_STR(FUSEDOPT_ISA_NAMESPACE) + 4,  // drop the "isa_" prefix
      {&cpu::sgd<float>, &cpu::sgd<double>},
      {&cpu::adagrad<float>, &cpu::adagrad<double>},
      {&cpu::rmsprop<float>, &cpu::rmsprop<double>},
      {&cpu::adam<float>, &cpu::adam<double>},
      {&cpu::stream_adam_pattern<float>, &cpu::stream_adam_pattern<double>},
      {&cpu::stream_write<float>, &cpu::stream_write<double>},
      {&cpu::init_fill<OutKind::Float32>, &cpu::init_fill<OutKind::Float64>, &cpu::init_fill<OutKind::Float16>,
       &cpu::init_fill<OutKind::BFloat16>},
  };
  return table;
}

}  // namespace fusedopt
