// Threads, instruction set and build facts of the CPU kernels.
#include <omp.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <stdexcept>

#include "tensor_lists.hpp"

namespace py = pybind11;
using namespace py::literals;

namespace fusedopt {
namespace {

py::dict cpu_info() {
  py::dict d;
  d["isa"] = active_kernels().isa;
  d["available_isas"] = available_isas();
  d["num_threads"] = omp_get_max_threads();
  d["num_procs"] = omp_get_num_procs();
  d["openmp"] = _OPENMP;
  d["compiler"] = __VERSION__;
  d["serial_threshold"] = serial_threshold();
  return d;
}

void set_num_threads(int n) {
  if (n < 1) throw py::value_error("n: expected a number of threads >= 1, got " + std::to_string(n));
  omp_set_num_threads(n);
}

void set_isa_checked(const std::string& name) {
  try {
    set_isa(name);
  } catch (const std::invalid_argument&) {
    std::string names;
    for (const std::string& s : available_isas()) names += (names.empty() ? "" : ", ") + s;
    throw py::value_error("isa: '" + name + "' is not available on this CPU; available: " + names);
  }
}

void set_serial_threshold_checked(long long n) {
  if (n < 0) throw py::value_error("n: expected a number of elements >= 0, got " + std::to_string(n));
  set_serial_threshold(n);
}

}  // namespace

void register_runtime(py::module_& m) {
  m.def("cpu_info", &cpu_info, "ISA in use, ISAs available, OpenMP threads and build facts.");
  m.def("set_num_threads", &set_num_threads, "n"_a, "Threads used by the CPU kernels (like omp_set_num_threads).");
  m.def("get_num_threads", []() { return omp_get_max_threads(); }, "Threads the CPU kernels use.");
  m.def("set_isa", &set_isa_checked, "name"_a, "Use the kernels built for one ISA (testing, benchmarks).");
  m.def("set_serial_threshold", &set_serial_threshold_checked, "n"_a,
        "Below n elements a step runs on the calling thread (benchmarks pick n).");
}

}  // namespace fusedopt
