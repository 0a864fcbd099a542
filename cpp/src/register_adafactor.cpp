// The binding of Adafactor's CPU step (cpu/adafactor.hpp). Its state is shaped by each param's
// dimensions, so it checks its lists itself: a param of 2 or more dims has a row factor (its shape with
// the last dim 1) and a column factor (the second-to-last dim 1) and no variance; a param of 0 or 1 dims
// a variance of its own shape and no factors. Everything is checked before anything is written.
#include <pybind11/pybind11.h>

#include <cstring>
#include <string>
#include <vector>

#include "kernels.hpp"
#include "overlap.hpp"
#include "tensor_lists.hpp"

namespace py = pybind11;
using namespace py::literals;

namespace fusedopt {
namespace {

struct Lists {
  const char* names[5] = {"params", "grads", "row_vars", "col_vars", "variances"};
  py::handle lists[5];
  size_t n = 0;

  py::handle item(int k, size_t i) const { return PySequence_Fast_GET_ITEM(lists[k].ptr(), static_cast<Py_ssize_t>(i)); }
  Namer namer(int k) const {
    const char* name = names[k];
    return [name](size_t i) { return std::string(name) + "[" + std::to_string(i) + "]"; };
  }
};

// The state array list k holds for param i: of the expected shape, or None where the param has none.
void* state_array(const Lists& l, int k, size_t i, const std::vector<int64_t>* expected, const char* what) {
  py::handle a = l.item(k, i);
  const std::string name = l.namer(k)(i);
  const std::string param = "params[" + std::to_string(i) + "] shape " + shape_text(shape_vector(l.item(0, i)));
  if (expected == nullptr) {
    if (!a.is_none())
      throw py::value_error(name + ": expected None, " + param + " has " + what);
    return nullptr;
  }
  if (a.is_none()) throw py::value_error(name + ": required for " + param + " (got None)");
  void* data = check_memory(a, l.namer(k), i, true, l.item(0, 0), "params[0]");
  if (shape_vector(a) != *expected)
    throw py::value_error(name + ": shape " + shape_text(shape_vector(a)) + " is not " + shape_text(*expected) + ", " +
                          what + " of " + param);
  return data;
}

void adafactor_step(py::handle params, py::handle grads, py::handle row_vars, py::handle col_vars,
                    py::handle variances, py::handle scalars) {
  Lists l;
  py::handle given[5] = {params, grads, row_vars, col_vars, variances};
  for (int k = 0; k < 5; ++k) {
    l.lists[k] = given[k];
    if (!PyList_Check(given[k].ptr()) && !PyTuple_Check(given[k].ptr()))
      throw py::type_error(std::string(l.names[k]) + ": expected a list of numpy arrays, got " + type_name(given[k]));
    const auto len = static_cast<size_t>(PySequence_Fast_GET_SIZE(given[k].ptr()));
    if (k == 0 && len == 0) throw py::value_error("params: empty list, nothing to update");
    if (k == 0) l.n = len;
    else if (len != l.n)
      throw py::value_error(std::string(l.names[k]) + ": expected " + std::to_string(l.n) +
                            " entries (one per param), got " + std::to_string(len));
  }
  // One set of scalars for every param (bytes), or one per param (a list of bytes: an optimizer's
  // param groups in one call, so that everything is checked before anything is written).
  const bool per_param = PyList_Check(scalars.ptr()) || PyTuple_Check(scalars.ptr());
  if (per_param && static_cast<size_t>(PySequence_Fast_GET_SIZE(scalars.ptr())) != l.n)
    throw py::value_error("scalars: expected " + std::to_string(l.n) + " entries (one per param), got " +
                          std::to_string(PySequence_Fast_GET_SIZE(scalars.ptr())));
  std::vector<double> fields(l.n * kAdafactorScalars);
  for (size_t i = 0; i < l.n; ++i) {
    py::handle given_scalars = per_param ? PySequence_Fast_GET_ITEM(scalars.ptr(), static_cast<Py_ssize_t>(i)) : scalars;
    char* bytes = nullptr;
    Py_ssize_t size = 0;
    if (!PyBytes_Check(given_scalars.ptr()) || PyBytes_AsStringAndSize(given_scalars.ptr(), &bytes, &size) != 0)
      throw py::type_error("adafactor: scalars must be bytes (the rule's fields as doubles)");
    if (size != static_cast<Py_ssize_t>(kAdafactorScalars * sizeof(double)))
      throw py::value_error("adafactor: expected " + std::to_string(kAdafactorScalars) + " scalars, got " +
                            std::to_string(size / sizeof(double)));
    std::memcpy(&fields[i * kAdafactorScalars], bytes, kAdafactorScalars * sizeof(double));
  }

  py::handle first = l.item(0, 0);
  const DType dtype = storage_dtype(first, "params[0]");  // every array in it; 16-bit types compute in float32
  const size_t itemsize = dtype == kFloat64 ? 8 : dtype == kFloat32 ? 4 : 2;
  std::vector<AdafactorTensor> tensors(l.n);
  std::vector<py::object> held;  // every array stays alive while the kernel runs without the GIL
  WrittenExtents written;
  std::vector<Extent> read;
  for (size_t i = 0; i < l.n; ++i) {
    py::handle p = l.item(0, i);
    AdafactorTensor& x = tensors[i];
    x.scalars = &fields[i * kAdafactorScalars];
    x.param = check_array(p, l.namer(0), i, true, p, l.namer(0), i, first, "params[0]");
    x.grad = check_array(l.item(1, i), l.namer(1), i, false, p, l.namer(0), i, first, "params[0]");
    const std::vector<int64_t> shape = shape_vector(p);
    int64_t numel = 1;
    for (int64_t d : shape) numel *= d;
    if (shape.size() >= 2) {
      std::vector<int64_t> rows = shape, cols = shape;
      rows.back() = 1;
      cols[cols.size() - 2] = 1;
      x.row_var = state_array(l, 2, i, &rows, "the row factor");
      x.col_var = state_array(l, 3, i, &cols, "the column factor");
      x.variance = state_array(l, 4, i, nullptr, "2 or more dims (a row and a column factor instead)");
      x.rows = shape[shape.size() - 2];
      x.cols = shape.back();
      x.batches = x.rows * x.cols == 0 ? 0 : numel / (x.rows * x.cols);
    } else {
      const char* why = "fewer than 2 dims (a variance instead)";
      x.row_var = state_array(l, 2, i, nullptr, why);
      x.col_var = state_array(l, 3, i, nullptr, why);
      x.variance = state_array(l, 4, i, &shape, "the variance");
      x.batches = x.rows = 1;
      x.cols = numel;
    }
    const size_t bytes_of[5] = {size_t(numel) * itemsize, size_t(numel) * itemsize,
                                size_t(x.batches * x.rows) * itemsize, size_t(x.batches * x.cols) * itemsize,
                                size_t(numel) * itemsize};
    const void* pointers[5] = {x.param, x.grad, x.row_var, x.col_var, x.variance};
    for (int k = 0; k < 5; ++k) {
      if (pointers[k] == nullptr) continue;
      held.push_back(py::reinterpret_borrow<py::object>(l.item(k, i)));
      if (k == 1) {
        const auto begin = reinterpret_cast<uintptr_t>(x.grad);
        read.push_back({begin, begin + bytes_of[1], 0, 1, i});
      } else {
        written.add(pointers[k], bytes_of[k], 0, k, i);
      }
    }
  }
  const ExtentNamer name = [&l](const Extent& e) { return l.namer(e.slot)(e.index); };
  written.sort_and_refuse_overlaps(name);
  written.refuse_grads(read, name);

  AdafactorView view{static_cast<int64_t>(l.n), tensors.data(), serial_threshold(), num_threads()};
  const AdafactorKernel kernel = active_kernels().adafactor[dtype];
  py::gil_scoped_release release;
  kernel(view);
}

}  // namespace

void register_adafactor(py::module_& m) {
  m.def("adafactor_step", &adafactor_step, "params"_a, "grads"_a, "row_vars"_a, "col_vars"_a, "variances"_a,
        "scalars"_a,
        "One fused Adafactor step in place: row_vars/col_vars for params of 2+ dims, variances for the others "
        "(None where a param has none); scalars: the rule's fields as float64 bytes (fusedopt.functional.adafactor), "
        "for all params or a list with one per param.");
}

}  // namespace fusedopt
