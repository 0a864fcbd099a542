// Threads, instruction set and build facts of the CPU kernels.
#include <omp.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <limits>
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
  d["num_threads"] = num_threads();
  d["num_procs"] = omp_get_num_procs();
  d["openmp"] = _OPENMP;
  d["compiler"] = __VERSION__;
  d["serial_threshold"] = serial_threshold();
  d["thread_runtime"] = thread_runtime_is_openmp() ? "openmp" : "fusedopt";  // set_thread_runtime
  d["avx512_bf16"] = use_avx512_bf16();  // bfloat16 stores through VCVTNEPS2BF16 in the avx512 kernels
  return d;
}

constexpr long long kMostThreads = 4096;

void set_num_threads_checked(py::handle n) {
  set_num_threads(static_cast<int>(checked_int(n, "n", 1, kMostThreads)));
}

// The threads a kernel's job gets now (tests: the setting reaches every calling thread).
int team_size_probe() { return team_size(num_threads()); }

void set_isa_checked(const std::string& name) {
  try {
    set_isa(name);
  } catch (const std::invalid_argument&) {
    std::string names;
    for (const std::string& s : available_isas()) names += (names.empty() ? "" : ", ") + s;
    throw py::value_error("isa: '" + name + "' is not available on this CPU; available: " + names);
  }
}

void set_serial_threshold_checked(py::handle n) {
  set_serial_threshold(checked_int(n, "n", 0, std::numeric_limits<int64_t>::max()));
}

}  // namespace

void register_runtime(py::module_& m) {
  m.def("cpu_info", &cpu_info, "ISA in use, ISAs available, OpenMP threads and build facts.");
  m.def("set_num_threads", &set_num_threads_checked, "n"_a,
        "Threads the CPU kernels use, from every calling thread; other libraries' OpenMP settings are untouched.");
  m.def("get_num_threads", &num_threads, "Threads the CPU kernels use (fusedopt's own count).");
  m.def("_team_size", &team_size_probe, "The threads a kernel's job gets now (tests).");
  m.def("_pool_stats", [] {
    const PoolStats s = pool_stats();
    py::dict d;
    d["jobs"] = s.jobs;
    d["chunks"] = s.chunks;
    d["chunks_by_workers"] = s.chunks_by_workers;
    d["jobs_helped"] = s.jobs_helped;
    d["openmp_jobs"] = s.openmp_jobs;
    return d;
  }, "What the kernels' workers did so far: parallel jobs, chunks, chunks run by workers, jobs they helped (benchmarks).");
  m.def("_set_worker_wait", [](py::handle spin_ns, bool yields, py::handle misses) {
    set_worker_wait(checked_int(spin_ns, "spin_ns", 0, int64_t(1) << 40), yields,
                    static_cast<int>(checked_int(misses, "misses", 1, 1 << 30)));
  }, "spin_ns"_a, "yields"_a, "misses"_a,
  "How idle workers wait: spin for spin_ns of CPU time (yielding if asked), then sleep; after `misses` jobs "
  "in a row claimed by others, sleep at once (benchmarks).");
  m.def("_set_thread_runtime", [](bool openmp) { set_thread_runtime(openmp); }, "openmp"_a,
        "Run the CPU kernels' jobs on the OpenMP runtime's team (True) or fusedopt's pool (False).");
  m.def("_thread_runtime_is_openmp", [] { return thread_runtime_is_openmp(); });
  m.def("set_isa", &set_isa_checked, "name"_a, "Use the kernels built for one ISA (testing, benchmarks).");
  m.def("set_serial_threshold", &set_serial_threshold_checked, "n"_a,
        "Below n elements a step runs on the calling thread (benchmarks pick n).");
}

}  // namespace fusedopt
