#include "tensor_lists.hpp"

#include <pybind11/numpy.h>

#include <string>

namespace py = pybind11;

namespace fusedopt {
namespace {

int64_t g_serial_threshold = 8192;  // crossover measured by benchmarks/bench_threshold.py (RESULTS.md)

using py::detail::array_proxy;
using py::detail::npy_api;

std::string type_name(py::handle h) { return Py_TYPE(h.ptr())->tp_name; }

std::string shape_of(py::handle arr) {
  const auto* a = array_proxy(arr.ptr());
  std::string s = "(";
  for (int d = 0; d < a->nd; ++d) s += (d ? ", " : "") + std::to_string(a->dimensions[d]);
  return s + (a->nd == 1 ? ",)" : ")");
}

std::string dtype_of(py::handle arr) {
  return py::str(py::reinterpret_borrow<py::array>(arr).dtype());
}

std::string at(const char* name, size_t i) { return std::string(name) + "[" + std::to_string(i) + "]"; }

bool same_shape(py::handle a, py::handle b) {
  const auto* x = array_proxy(a.ptr());
  const auto* y = array_proxy(b.ptr());
  if (x->nd != y->nd) return false;
  for (int d = 0; d < x->nd; ++d)
    if (x->dimensions[d] != y->dimensions[d]) return false;
  return true;
}

}  // namespace

int64_t serial_threshold() { return g_serial_threshold; }
void set_serial_threshold(int64_t n) { g_serial_threshold = n; }

CheckedLists::CheckedLists(const ListArg* first, const ListArg* last) {
  if (last - first > kMaxSlots) throw py::value_error("at most " + std::to_string(kMaxSlots) + " lists per call");
  const npy_api& api = npy_api::get();
  const ListArg& params = *first;
  size_t n = 0;
  py::handle ref_dtype;  // params[0]'s descriptor
  int k = 0;
  for (const ListArg* it = first; it != last; ++it) {
    const ListArg& list = *it;
    if (list.obj.is_none()) {
      ++k;
      continue;
    }
    if (!PyList_Check(list.obj.ptr()) && !PyTuple_Check(list.obj.ptr()))
      throw py::type_error(std::string(list.name) + ": expected a list of numpy arrays, got " +
                           type_name(list.obj));
    const auto seq = py::reinterpret_borrow<py::sequence>(list.obj);
    const size_t len = seq.size();
    if (k == 0) {
      n = len;
      if (n == 0) throw py::value_error("params: empty list, nothing to update");
    } else if (len != n) {
      throw py::value_error(std::string(list.name) + ": expected " + std::to_string(n) +
                            " arrays (one per param), got " + std::to_string(len));
    }
    pointers_[k].resize(n);
    for (size_t i = 0; i < n; ++i) {
      py::handle a = PySequence_Fast_GET_ITEM(list.obj.ptr(), static_cast<Py_ssize_t>(i));
      if (!api.PyArray_Check_(a.ptr()))
        throw py::type_error(at(list.name, i) + ": expected a numpy.ndarray, got " + type_name(a) +
                             " (other frameworks: use their fusedopt adapter)");
      PyObject* descr = reinterpret_cast<PyObject*>(array_proxy(a.ptr())->descr);
      if (k == 0 && i == 0) {
        const py::dtype f32 = py::dtype::of<float>(), f64 = py::dtype::of<double>();
        if (api.PyArray_EquivTypes_(descr, f32.ptr())) dtype_ = kFloat32;
        else if (api.PyArray_EquivTypes_(descr, f64.ptr())) dtype_ = kFloat64;
        else
          throw py::type_error("params[0]: dtype " + dtype_of(a) +
                               " is not supported; expected float32 or float64 (native byte order)");
        ref_dtype = descr;
      } else if (!api.PyArray_EquivTypes_(descr, ref_dtype.ptr())) {
        throw py::type_error(at(list.name, i) + ": dtype " + dtype_of(a) + " does not match params[0] dtype " +
                             dtype_of(PySequence_Fast_GET_ITEM(params.obj.ptr(), 0)) +
                             " (all arrays of one call share a dtype)");
      }
      const int flags = array_proxy(a.ptr())->flags;
      if (!(flags & npy_api::NPY_ARRAY_C_CONTIGUOUS_))
        throw py::value_error(at(list.name, i) + ": array is not C-contiguous; fusedopt updates in place and "
                              "never copies, so pass a contiguous array (np.ascontiguousarray) and keep it");
      if (!(flags & npy_api::NPY_ARRAY_ALIGNED_))
        throw py::value_error(at(list.name, i) + ": array is not aligned to its dtype");
      if (list.writable && !(flags & npy_api::NPY_ARRAY_WRITEABLE_))
        throw py::value_error(at(list.name, i) + ": array is read-only; it is updated in place, so it must be writable");
      if (k > 0) {
        py::handle p = PySequence_Fast_GET_ITEM(params.obj.ptr(), static_cast<Py_ssize_t>(i));
        if (!same_shape(a, p))
          throw py::value_error(at(list.name, i) + ": shape " + shape_of(a) + " does not match params[" +
                                std::to_string(i) + "] shape " + shape_of(p));
      }
      pointers_[k][i] = array_proxy(a.ptr())->data;
    }
    ++k;
  }
  offsets_.resize(n + 1);
  offsets_[0] = 0;
  for (size_t i = 0; i < n; ++i) {
    py::handle p = PySequence_Fast_GET_ITEM(params.obj.ptr(), static_cast<Py_ssize_t>(i));
    offsets_[i + 1] = offsets_[i] + static_cast<int64_t>(py::reinterpret_borrow<py::array>(p).size());
  }
}

TensorListView CheckedLists::view() const {
  TensorListView v{};
  v.n_tensors = static_cast<int64_t>(offsets_.size()) - 1;
  v.offsets = offsets_.data();
  for (int k = 0; k < kMaxSlots; ++k) v.slots[k] = pointers_[k].empty() ? nullptr : pointers_[k].data();
  v.serial_below = g_serial_threshold;
  return v;
}

}  // namespace fusedopt
