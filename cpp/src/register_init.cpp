// Bindings of the random fills and of Philox itself (for known-answer tests). Distribution
// parameters are computed and checked by fusedopt.init; this checks the output array.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>
#include <string>

#include "fusedopt/philox.hpp"
#include "kernels.hpp"
#include "tensor_lists.hpp"

namespace py = pybind11;
using namespace py::literals;

namespace fusedopt {
namespace {

void init_fill(py::handle out, int out_kind, int distribution, double a, double b, double mean, double std,
               double y_lo, double y_hi, double upper_below, unsigned long long seed, unsigned long long stream) {
  if (!py::isinstance<py::array>(out))
    throw py::type_error(std::string("tensor: expected a numpy.ndarray, got ") + Py_TYPE(out.ptr())->tp_name);
  auto arr = py::reinterpret_borrow<py::array>(out);
  if (out_kind < 0 || out_kind > 3) throw py::value_error("out_kind: expected 0..3");
  if (distribution < 0 || distribution > 2) throw py::value_error("distribution: expected 0..2");
  const py::ssize_t itemsize = out_kind == 1 ? 8 : (out_kind == 0 ? 4 : 2);
  if (arr.itemsize() != itemsize) throw py::type_error("tensor: item size does not match the output kind");
  if (!(arr.flags() & py::array::c_style))
    throw py::value_error("tensor: array is not C-contiguous; fusedopt fills in place and never copies");
  if (!arr.writeable()) throw py::value_error("tensor: array is read-only; it is filled in place");
  const int64_t offsets[2] = {0, static_cast<int64_t>(arr.size())};
  void* const pointers[1] = {arr.mutable_data()};
  TensorListView view{};
  view.n_tensors = 1;
  view.offsets = offsets;
  view.slots[0] = pointers;
  view.serial_below = serial_threshold();
  const InitHyper h{static_cast<Distribution>(distribution), a, b, mean, std, y_lo, y_hi, upper_below, seed, stream};
  const Kernel<InitHyper> kernel = active_kernels().init_fill[out_kind];
  py::gil_scoped_release release;
  kernel(view, h);
}

py::tuple philox(std::array<unsigned int, 4> counter, std::array<unsigned int, 2> key) {
  const PhiloxBlock r = philox4x32_10(counter[0], counter[1], counter[2], counter[3], key[0], key[1]);
  return py::make_tuple(r.v[0], r.v[1], r.v[2], r.v[3]);
}

}  // namespace

void register_init(py::module_& m) {
  m.def("init_fill", &init_fill, "tensor"_a, py::kw_only(), "out_kind"_a, "distribution"_a, "a"_a, "b"_a,
        "mean"_a, "std"_a, "y_lo"_a, "y_hi"_a, "upper_below"_a, "seed"_a, "stream"_a,
        "Fills an array in place from Philox4x32-10 (see fusedopt.init).");
  m.def("philox4x32_10", &philox, "counter"_a, "key"_a, "One Philox4x32-10 block: 4 words from 4 counter + 2 key words.");
}

}  // namespace fusedopt
