// fusedopt._core: the compiled CPU kernels. Each area registers itself.
#include <pybind11/pybind11.h>

namespace py = pybind11;

namespace fusedopt {
void register_optimizers(py::module_& m);
void register_runtime(py::module_& m);
void register_init(py::module_& m);
void register_torch_steady(py::module_& m);
void register_adafactor(py::module_& m);
void register_same_objects(py::module_& m);
void register_xla_step(py::module_& m);
}  // namespace fusedopt

PYBIND11_MODULE(_core, m) {
  m.doc() = "fusedopt compiled core: fused CPU optimizer kernels and random fills";
  m.attr("__version__") = FUSEDOPT_VERSION;
  fusedopt::register_runtime(m);
  fusedopt::register_optimizers(m);
  fusedopt::register_init(m);
  fusedopt::register_torch_steady(m);
  fusedopt::register_adafactor(m);
  fusedopt::register_same_objects(m);
  fusedopt::register_xla_step(m);
}
