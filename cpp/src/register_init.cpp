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

// The dtype each output kind writes (fusedopt.init._fill.out_kind): bfloat16 is ml_dtypes' dtype or
// uint16 bit patterns.
bool dtype_fits(const py::dtype& dt, int out_kind) {
  switch (out_kind) {
    case 0: return dt.is(py::dtype::of<float>()) || (dt.kind() == 'f' && dt.itemsize() == 4);
    case 1: return dt.kind() == 'f' && dt.itemsize() == 8;
    case 2: return dt.kind() == 'f' && dt.itemsize() == 2;
    default:
      return dt.itemsize() == 2 && ((dt.kind() == 'u') || py::str(dt).cast<std::string>() == "bfloat16");
  }
}

void init_fill(py::handle out, py::handle out_kind_arg, py::handle distribution_arg, double a, double b, double mean,
               double std, double y_lo, double y_hi, double upper_below, unsigned long long seed,
               unsigned long long stream) {
  if (!py::isinstance<py::array>(out))
    throw py::type_error(std::string("tensor: expected a numpy.ndarray, got ") + Py_TYPE(out.ptr())->tp_name);
  auto arr = py::reinterpret_borrow<py::array>(out);  // held until the fill is done
  const int out_kind = static_cast<int>(checked_int(out_kind_arg, "out_kind", 0, 3));
  const int distribution = static_cast<int>(checked_int(distribution_arg, "distribution", 0, 2));
  static const char* const kinds[] = {"float32", "float64", "float16", "bfloat16 (ml_dtypes) or uint16 bits"};
  if (!dtype_fits(arr.dtype(), out_kind) || !(arr.dtype().byteorder() == '=' || arr.dtype().byteorder() == '|'))
    throw py::type_error("tensor: dtype " + py::str(arr.dtype()).cast<std::string>() + " is not " + kinds[out_kind] +
                         " (native byte order), the output kind asked for");
  if (!(arr.flags() & py::array::c_style))
    throw py::value_error("tensor: array is not C-contiguous; fusedopt fills in place and never copies");
  if (!(arr.flags() & py::detail::npy_api::NPY_ARRAY_ALIGNED_))
    throw py::value_error("tensor: array is not aligned to its dtype");
  if (!arr.writeable()) throw py::value_error("tensor: array is read-only; it is filled in place");
  const int64_t offsets[2] = {0, static_cast<int64_t>(arr.size())};
  void* const pointers[1] = {arr.mutable_data()};
  TensorListView view{};
  view.n_tensors = 1;
  view.offsets = offsets;
  view.slots[0] = pointers;
  set_run_settings(view);
  const InitHyper h{static_cast<Distribution>(distribution), a, b, mean, std, y_lo, y_hi, upper_below, seed, stream};
  const Kernel<InitHyper> kernel = active_kernels().init_fill[out_kind];
  py::gil_scoped_release release;
  kernel(view, h);
}

// n words of a sequence, each an int in [0, 2**32).
std::array<unsigned int, 4> words(py::handle seq, size_t n, const char* name) {
  if (!PyList_Check(seq.ptr()) && !PyTuple_Check(seq.ptr()))
    throw py::type_error(std::string(name) + ": expected a list or tuple of " + std::to_string(n) + " ints");
  const auto items = py::reinterpret_borrow<py::sequence>(seq);
  if (items.size() != n)
    throw py::value_error(std::string(name) + ": expected " + std::to_string(n) + " words, got " +
                          std::to_string(items.size()));
  std::array<unsigned int, 4> out{};
  for (size_t i = 0; i < n; ++i)
    out[i] = static_cast<unsigned int>(checked_int(items[i], name, 0, 0xFFFFFFFFLL));
  return out;
}

py::tuple philox(py::handle counter_arg, py::handle key_arg) {
  const auto counter = words(counter_arg, 4, "counter");
  const auto key = words(key_arg, 2, "key");
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
