#include "tensor_lists.hpp"

#include <omp.h>
#include <pybind11/numpy.h>

#include <atomic>

#include "overlap.hpp"

namespace py = pybind11;

namespace fusedopt {
namespace {

std::atomic<int64_t> g_serial_threshold{8192};  // crossover measured by benchmarks/bench_threshold.py (RESULTS.md)
std::atomic<int> g_num_threads{omp_get_max_threads()};  // OMP_NUM_THREADS or the cores, at import

using py::detail::array_proxy;
using py::detail::npy_api;

std::string dtype_of(py::handle arr) { return py::str(py::reinterpret_borrow<py::array>(arr).dtype()); }

bool same_shape(py::handle a, py::handle b) {
  const auto* x = array_proxy(a.ptr());
  const auto* y = array_proxy(b.ptr());
  if (x->nd != y->nd) return false;
  for (int d = 0; d < x->nd; ++d)
    if (x->dimensions[d] != y->dimensions[d]) return false;
  return true;
}

Namer indexed(const char* name) {
  return [name](size_t i) { return std::string(name) + "[" + std::to_string(i) + "]"; };
}

}  // namespace

std::string type_name(py::handle h) { return Py_TYPE(h.ptr())->tp_name; }

int64_t serial_threshold() { return g_serial_threshold.load(std::memory_order_relaxed); }
void set_serial_threshold(int64_t n) { g_serial_threshold.store(n, std::memory_order_relaxed); }
int num_threads() { return g_num_threads.load(std::memory_order_relaxed); }
void set_num_threads(int n) { g_num_threads.store(n, std::memory_order_relaxed); }

void set_run_settings(TensorListView& view) {
  view.serial_below = serial_threshold();
  view.num_threads = num_threads();
}

long long checked_int(py::handle value, const char* name, long long lo, long long hi) {
  const std::string expected = std::string(name) + ": expected an int in [" + std::to_string(lo) + ", " +
                               std::to_string(hi) + "], got ";
  if (PyBool_Check(value.ptr()) || !PyIndex_Check(value.ptr()))
    throw py::type_error(expected + type_name(value));
  int overflow = 0;
  const py::object index = py::reinterpret_steal<py::object>(PyNumber_Index(value.ptr()));
  if (!index) throw py::error_already_set();
  const long long v = PyLong_AsLongLongAndOverflow(index.ptr(), &overflow);
  if (overflow != 0 || v < lo || v > hi) throw py::value_error(expected + py::str(index).cast<std::string>());
  return v;
}

size_t itemsize_of(DType d) { return d == kFloat64 ? 8 : d == kFloat32 ? 4 : 2; }

const char* dtype_text(DType d) {
  static const char* const names[] = {"float32", "float64", "bfloat16", "float16"};
  return names[d];
}

DType storage_dtype(py::handle a, const std::string& name) {
  const npy_api& api = npy_api::get();
  if (!api.PyArray_Check_(a.ptr()))
    throw py::type_error(name + ": expected a numpy.ndarray, got " + type_name(a) +
                         " (other frameworks: use their fusedopt adapter)");
  PyObject* descr = reinterpret_cast<PyObject*>(array_proxy(a.ptr())->descr);
  static const py::dtype f32 = py::dtype::of<float>(), f64 = py::dtype::of<double>();
  static const py::dtype f16 = py::dtype("float16");
  if (api.PyArray_EquivTypes_(descr, f32.ptr())) return kFloat32;
  if (api.PyArray_EquivTypes_(descr, f64.ptr())) return kFloat64;
  if (api.PyArray_EquivTypes_(descr, f16.ptr())) return kFloat16;
  const py::dtype dt = py::reinterpret_borrow<py::array>(a).dtype();
  if (dt.itemsize() == 2 && dt.kind() == 'V' && dtype_of(a) == "bfloat16") return kBFloat16;  // ml_dtypes.bfloat16
  throw py::type_error(name + ": dtype " + dtype_of(a) +
                       " is not supported; expected float32, float64, bfloat16 (ml_dtypes) or float16 (native "
                       "byte order)");
}

DType call_dtype(py::handle first_param, const std::string& name) {
  const DType d = storage_dtype(first_param, name);
  if (d == kBFloat16 || d == kFloat16)
    throw py::type_error(name + ": dtype " + dtype_text(d) + " is not supported here; expected float32 or float64");
  return d;
}

void refuse_mixing_float64(const std::vector<DType>& dtypes, const std::vector<std::string>& first_names) {
  for (size_t k = 1; k < dtypes.size(); ++k)
    if ((dtypes[k] == kFloat64) != (dtypes[0] == kFloat64))
      throw py::type_error(first_names[k] + ": dtype " + dtype_text(dtypes[k]) + " does not match " + first_names[0] +
                           " dtype " + dtype_text(dtypes[0]) + " (float64 arrays mix with float64 only; float32, "
                           "bfloat16 and float16 lists may mix, computing in float32)");
}

std::vector<int64_t> shape_vector(py::handle a) {
  const auto* x = array_proxy(a.ptr());
  return std::vector<int64_t>(x->dimensions, x->dimensions + x->nd);
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "(";
  for (size_t d = 0; d < shape.size(); ++d) s += (d ? ", " : "") + std::to_string(shape[d]);
  return s + (shape.size() == 1 ? ",)" : ")");
}

void* check_memory(py::handle a, const Namer& name, size_t i, bool writable, py::handle first_param,
                   const std::string& first_param_name) {
  const npy_api& api = npy_api::get();
  if (!api.PyArray_Check_(a.ptr()))
    throw py::type_error(name(i) + ": expected a numpy.ndarray, got " + type_name(a) +
                         " (other frameworks: use their fusedopt adapter)");
  PyObject* descr = reinterpret_cast<PyObject*>(array_proxy(a.ptr())->descr);
  PyObject* first_descr = reinterpret_cast<PyObject*>(array_proxy(first_param.ptr())->descr);
  if (!api.PyArray_EquivTypes_(descr, first_descr))
    throw py::type_error(name(i) + ": dtype " + dtype_of(a) + " does not match " + first_param_name + " dtype " +
                         dtype_of(first_param));
  const int flags = array_proxy(a.ptr())->flags;
  if (!(flags & npy_api::NPY_ARRAY_C_CONTIGUOUS_))
    throw py::value_error(name(i) + ": array is not C-contiguous; fusedopt updates in place and never copies, "
                          "so pass a contiguous array (np.ascontiguousarray) and keep it");
  if (!(flags & npy_api::NPY_ARRAY_ALIGNED_)) throw py::value_error(name(i) + ": array is not aligned to its dtype");
  if (writable && !(flags & npy_api::NPY_ARRAY_WRITEABLE_))
    throw py::value_error(name(i) + ": array is read-only; it is updated in place, so it must be writable");
  return array_proxy(a.ptr())->data;
}

void* check_array(py::handle a, const Namer& name, size_t i, bool writable, py::handle param,
                  const Namer& param_name, size_t param_i, py::handle first_param,
                  const std::string& first_param_name) {
  void* data = check_memory(a, name, i, writable, first_param, first_param_name);
  if (param.ptr() != a.ptr() && !same_shape(a, param))
    throw py::value_error(name(i) + ": shape " + shape_text(shape_vector(a)) + " does not match " + param_name(param_i) +
                          " shape " + shape_text(shape_vector(param)));
  return data;
}

CheckedLists::CheckedLists(const std::vector<Arg>& lists) {
  if (lists.size() > static_cast<size_t>(kMaxSlots))
    throw py::value_error("at most " + std::to_string(kMaxSlots) + " lists per call");
  // Each list as a tuple, read from here on: a check that runs Python code (a dtype's name, a first-use
  // initialization) lets another thread run, which may empty or change the user's list meanwhile.
  std::vector<py::tuple> items;
  size_t n = 0;
  for (size_t k = 0; k < lists.size(); ++k) {
    const Arg& list = lists[k];
    if (!PyList_Check(list.obj.ptr()) && !PyTuple_Check(list.obj.ptr()))
      throw py::type_error(std::string(list.name) + ": expected a list of numpy arrays, got " + type_name(list.obj));
    items.push_back(py::reinterpret_steal<py::tuple>(PySequence_Tuple(list.obj.ptr())));
    if (!items.back()) throw py::error_already_set();
    const size_t len = static_cast<size_t>(PyTuple_GET_SIZE(items.back().ptr()));
    if (k == 0) {
      n = len;
      if (n == 0) throw py::value_error(std::string(list.name) + ": empty list, nothing to update");
    } else if (len != n) {
      throw py::value_error(std::string(list.name) + ": expected " + std::to_string(n) +
                            " arrays (one per param), got " + std::to_string(len));
    }
  }
  const auto item = [&items](size_t k, size_t i) { return py::handle(PyTuple_GET_ITEM(items[k].ptr(), i)); };
  // Each list's dtype is its first array's; the arrays of a list share it.
  std::vector<std::string> first_names;
  for (size_t k = 0; k < lists.size(); ++k) {
    first_names.push_back(std::string(lists[k].name) + "[0]");  // "params[0]", "grads[0]", ...
    dtypes_.push_back(storage_dtype(item(k, 0), first_names[k]));
  }
  refuse_mixing_float64(dtypes_, first_names);
  dtype_ = dtypes_[0] == kFloat64 ? kFloat64 : kFloat32;
  for (DType d : dtypes_) mixed_ = mixed_ || d == kBFloat16 || d == kFloat16;
  const Namer param_name = indexed(lists.front().name);
  held_.reserve(n * lists.size());
  for (size_t k = 0; k < lists.size(); ++k) {
    const Namer name = indexed(lists[k].name);
    pointers_[k].resize(n);
    for (size_t i = 0; i < n; ++i) {
      pointers_[k][i] = check_array(item(k, i), name, i, lists[k].writable, item(0, i), param_name, i, item(k, 0),
                                    first_names[k]);
      held_.push_back(py::reinterpret_borrow<py::object>(item(k, i)));
    }
  }
  offsets_.resize(n + 1);
  offsets_[0] = 0;
  for (size_t i = 0; i < n; ++i)
    offsets_[i + 1] = offsets_[i] + static_cast<int64_t>(py::reinterpret_borrow<py::array>(item(0, i)).size());
  refuse_overlaps(lists, n);
}

// The written lists of the last call on this thread, checked disjoint: a training loop passes the same
// params and state every step, and then only its grads are checked (O(n log n) in the grads), or
// nothing when they also sit where the last call's did.
struct WrittenCache {
  std::vector<uintptr_t> key;  // (pointer, bytes) of every written array, and the lists' shape
  WrittenExtents extents;
  RecentlyChecked<std::vector<uintptr_t>> reads;  // (pointer, bytes) of grads found clear of them and each other
};

void CheckedLists::refuse_overlaps(const std::vector<Arg>& lists, size_t n) const {
  const auto name = [&lists](const Extent& e) {
    return std::string(lists[static_cast<size_t>(e.slot)].name) + "[" + std::to_string(e.index) + "]";
  };
  const auto bytes = [&](size_t k, size_t i) {
    return static_cast<size_t>(offsets_[i + 1] - offsets_[i]) * itemsize_of(dtypes_[k]);
  };
  const auto memory_of = [&](bool written, std::vector<uintptr_t>& out) {  // (pointer, bytes) per array
    for (size_t k = 0; k < lists.size(); ++k)
      if (lists[k].writable == written)
        for (size_t i = 0; i < n; ++i)
          out.insert(out.end(), {reinterpret_cast<uintptr_t>(pointers_[k][i]), bytes(k, i)});
  };
  thread_local WrittenCache cache;
  thread_local std::vector<uintptr_t> key, reads;
  key.assign({lists.size(), n});
  memory_of(true, key);
  reads.clear();
  memory_of(false, reads);
  if (key == cache.key && cache.reads.contains(reads)) return;  // the same arrays' memory as a checked call
  if (key != cache.key) {
    cache.reads.clear();
    cache.key.clear();  // invalid until checked
    cache.extents.clear();
    cache.extents.reserve(key.size() / 2);
    for (size_t k = 0; k < lists.size(); ++k)
      if (lists[k].writable)
        for (size_t i = 0; i < n; ++i)
          cache.extents.add(pointers_[k][i], bytes(k, i), 0, static_cast<int>(k), i);
    cache.extents.sort_and_refuse_overlaps(name);
    cache.key = key;
  }
  thread_local std::vector<Extent> grads;
  grads.clear();
  for (size_t k = 0; k < lists.size(); ++k)
    if (!lists[k].writable)
      for (size_t i = 0; i < n; ++i) {
        const auto begin = reinterpret_cast<uintptr_t>(pointers_[k][i]);
        grads.push_back({begin, begin + bytes(k, i), 0, static_cast<int>(k), i});
      }
  cache.extents.refuse_grads(grads, name);
  cache.reads.insert(reads);
}

StochasticRounding stochastic_rounding(py::handle rounding) {
  StochasticRounding r;
  if (rounding.is_none()) return r;
  if (!PyTuple_Check(rounding.ptr()) || PyTuple_GET_SIZE(rounding.ptr()) != 2)
    throw py::type_error("rounding: expected None or a (seed, step) tuple, got " + type_name(rounding));
  const auto word = [](py::handle v, const char* name) {
    if (PyBool_Check(v.ptr()) || !PyLong_Check(v.ptr()))
      throw py::type_error(std::string(name) + ": expected an int in [0, 2**64), got " + type_name(v));
    const unsigned long long x = PyLong_AsUnsignedLongLong(v.ptr());
    if (x == static_cast<unsigned long long>(-1) && PyErr_Occurred()) {
      PyErr_Clear();
      throw py::value_error(std::string(name) + ": expected an int in [0, 2**64), got " + py::str(v).cast<std::string>());
    }
    return x;
  };
  r.on = true;
  r.seed = word(PyTuple_GET_ITEM(rounding.ptr(), 0), "seed");
  r.step = word(PyTuple_GET_ITEM(rounding.ptr(), 1), "step");
  return r;
}

void refuse_bad_precision(const std::vector<DType>& dtypes, size_t n_lists, bool has_master, bool stochastic,
                          const std::function<std::string(size_t)>& first_name) {
  if (has_master) {
    if (dtypes[n_lists] != kFloat32)
      throw py::type_error(first_name(n_lists) + ": dtype " + dtype_text(dtypes[n_lists]) +
                           "; a master copy is float32");
    if (dtypes[0] != kBFloat16 && dtypes[0] != kFloat16)
      throw py::value_error("master weights are float32 copies of bfloat16 or float16 params; " + first_name(0) +
                            " is " + dtype_text(dtypes[0]));
  }
  if (stochastic)
    for (size_t k = 0; k < n_lists; ++k)
      if (k != 1 && dtypes[k] == kFloat16)
        throw py::value_error("stochastic rounding is for bfloat16 arrays; " + first_name(k) +
                              " is float16 (round it to nearest, or store it in bfloat16)");
}

void CheckedLists::require_one_type(const char* what) const {
  for (size_t k = 0; k < dtypes_.size(); ++k)
    if (dtypes_[k] != dtypes_[0] || dtypes_[k] == kBFloat16 || dtypes_[k] == kFloat16)
      throw py::type_error(std::string(what) + ": expected float32 or float64 arrays, all of one dtype");
}

MixedStorage CheckedLists::storage() const {
  MixedStorage m{};
  for (size_t k = 0; k < dtypes_.size(); ++k) m.type[k] = static_cast<unsigned char>(dtypes_[k]);
  return m;
}

TensorListView CheckedLists::view() const {
  TensorListView v{};
  v.n_tensors = static_cast<int64_t>(offsets_.size()) - 1;
  v.offsets = offsets_.data();
  for (int k = 0; k < kMaxSlots; ++k) v.slots[k] = pointers_[k].empty() ? nullptr : pointers_[k].data();
  set_run_settings(v);
  return v;
}

}  // namespace fusedopt
