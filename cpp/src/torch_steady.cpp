// The steady step of a fusedopt.torch param group (python/fusedopt/torch): a group whose params, state
// entries and step counts are those of its last step, so that only the grads are new. It gathers the
// grads of the torch params here, by data pointer, so that the step's host cost in Python does not grow
// with the number of params. torch is an optional dependency, so this reads tensors through their
// Python attributes (p.grad, g.data_ptr(), ...), never torch's C++ API.
#include <pybind11/numpy.h>

#include <cstdint>
#include <vector>

#include "plan.hpp"
#include "tensor_lists.hpp"

namespace py = pybind11;
using namespace py::literals;

namespace fusedopt {
namespace {

// Calls through torch.Tensor's own descriptors, looked up once: a method called with the tensor as its
// only argument, an attribute read by its getter. Each is the same C function that t.name() or t.name
// reaches, without the attribute lookup (the params' types are checked not to override any of them).
struct Descriptors {
  explicit Descriptors(py::handle tensor_type)
      : grad(getter(tensor_type, "grad")), dtype(getter(tensor_type, "dtype")), layout(getter(tensor_type, "layout")),
        is_cpu(getter(tensor_type, "is_cpu")), data_ptr(method(tensor_type, "data_ptr")),
        numel(method(tensor_type, "numel")), is_neg(method(tensor_type, "is_neg")),
        is_contiguous(method(tensor_type, "is_contiguous")) {}

  static py::object getter(py::handle type, const char* name) {
    py::object d = type.attr(name);
    if (!Py_TYPE(d.ptr())->tp_descr_get) throw py::type_error(std::string("TorchSteady: Tensor.") + name + " is not an attribute");
    return d;
  }
  static py::object method(py::handle type, const char* name) {
    py::object d = type.attr(name);
    if (!PyCallable_Check(d.ptr())) throw py::type_error(std::string("TorchSteady: Tensor.") + name + " is not a method");
    return d;
  }

  py::object grad, dtype, layout, is_cpu, data_ptr, numel, is_neg, is_contiguous;
};

// getter's value for obj (a new reference), or null (the Python error cleared) when it raises.
py::object get(const py::object& getter, PyObject* obj) {
  PyObject* r = Py_TYPE(getter.ptr())->tp_descr_get(getter.ptr(), obj, reinterpret_cast<PyObject*>(Py_TYPE(obj)));
  if (!r) PyErr_Clear();
  return py::reinterpret_steal<py::object>(r);
}

// method(obj), or null (the Python error cleared) when it raises.
py::object call(const py::object& method, PyObject* obj) {
  PyObject* r = PyObject_Vectorcall(method.ptr(), &obj, 1, nullptr);
  if (!r) PyErr_Clear();
  return py::reinterpret_steal<py::object>(r);
}

// The integer method(obj) gives (data_ptr(), numel()), or -1 when it raises or is not an int.
long long integer(const py::object& method, PyObject* obj) {
  const py::object r = call(method, obj);
  if (!r || !PyLong_Check(r.ptr())) return -1;
  const long long v = PyLong_AsLongLong(r.ptr());
  if (v == -1 && PyErr_Occurred()) PyErr_Clear();
  return v;
}

// The position PyDict_Next reaches key at in dict (compared by identity), or -1.
Py_ssize_t position_of(PyObject* dict, PyObject* key) {
  Py_ssize_t pos = 0, before = 0;
  PyObject *k, *v;
  while (PyDict_Next(dict, &pos, &k, &v)) {
    if (k == key) return before;
    before = pos;
  }
  return -1;
}

// Whether dict[key] is value. The entry at `at` (position_of's, when the dict was set up) answers
// without hashing the key (torch.Tensor's __hash__ is a Python function); a dict changed since is
// looked up by key.
bool holds(PyObject* dict, Py_ssize_t at, PyObject* key, PyObject* value) {
  PyObject *k, *v;
  if (at >= 0 && PyDict_Next(dict, &at, &k, &v) && k == key) return v == value;
  PyObject* found = PyDict_GetItemWithError(dict, key);
  if (!found) PyErr_Clear();
  return found == value;
}

class TorchSteady;

// The grads of one steady step: a reference to each (alive until the kernels are done), and pointers.
struct Gathered {
  const TorchSteady* owner = nullptr;
  std::vector<py::object> held;
  std::vector<std::vector<void*>> pointers;
};

class TorchSteady {
 public:
  // plan: a Plan of one call whose params are `params` in order; state_of: the optimizer's state;
  // states[i]: state_of[params[i]]; keys: the state entries the step reads, the first memory_keys of
  // them the plan's state buffers (their memory is checked too; the rest, the step counts, are read
  // from `counts`); tensors[i][k]: states[i][keys[k]]; dtype, layout, tensor_type: the grads' expected torch.dtype, torch.strided and
  // torch.Tensor; counts: the float32 NumPy view of the group's step counts, or None (SGD).
  TorchSteady(py::object plan, py::tuple params, py::dict state_of, py::tuple states, py::tuple keys,
              size_t memory_keys, py::tuple tensors, py::object dtype, py::object layout, py::object tensor_type, py::object counts)
      : plan_object_(std::move(plan)), params_(std::move(params)), state_of_(std::move(state_of)),
        states_(std::move(states)), keys_(std::move(keys)), memory_keys_(memory_keys), tensors_(std::move(tensors)), dtype_(std::move(dtype)),
        layout_(std::move(layout)), tensor_type_(std::move(tensor_type)), counts_(std::move(counts)), tensor_(tensor_type_) {
    const Plan& prepared = plan_object_.cast<const Plan&>();
    const size_t n = params_.size();
    if (memory_keys_ > keys_.size()) throw py::value_error("TorchSteady: memory_keys > len(keys)");
    if (prepared.n_calls() != 1 || prepared.n_params_in(0) != n || states_.size() != n || tensors_.size() != n)
      throw py::value_error("TorchSteady: one plan call over the params, one state and tensors entry per param");
    if (!counts_.is_none()) {
      const auto c = py::reinterpret_borrow<py::array>(counts_);
      if (!py::isinstance<py::array_t<float>>(counts_) || c.ndim() != 1 || static_cast<size_t>(c.size()) != n ||
          !(c.flags() & py::array::c_style) || !c.writeable())
        throw py::value_error("TorchSteady: counts must be a writable contiguous float32 array, one per param");
    }
    itemsize_ = itemsize_of(prepared.dtype(0));
    for (py::handle s : states_)
      if (!PyDict_Check(s.ptr())) throw py::type_error("TorchSteady: each state must be a dict");
    for (py::handle k : keys_)
      if (!PyUnicode_Check(k.ptr())) throw py::type_error("TorchSteady: each key must be a str");
    for (size_t i = 0; i < n; ++i) {
      numel_.push_back(prepared.numel(0, i));
      check_type(params_[i]);
      types_.push_back(Py_TYPE(params_[i].ptr()));
      pointers_.push_back(integer(tensor_.data_ptr, params_[i].ptr()));
      const auto row = tensors_[i].cast<py::tuple>();
      if (row.size() != keys_.size()) throw py::value_error("TorchSteady: one tensor per key");
      for (size_t k = 0; k < memory_keys_; ++k) {
        check_type(row[k]);
        pointers_.push_back(integer(tensor_.data_ptr, row[k].ptr()));
      }
      state_at_.push_back(position_of(state_of_.ptr(), params_[i].ptr()));
      for (size_t k = 0; k < keys_.size(); ++k) key_at_.push_back(position_of(states_[i].ptr(), keys_[k].ptr()));
    }
    for (long long pointer : pointers_)
      if (pointer <= 0) throw py::value_error("TorchSteady: every param and state tensor must have a data_ptr()");
  }

  // The grads of the group's params when every count is `count` and nothing but the grads has changed
  // since this was made (the params list holds the same params, their memory, their state entries and
  // state tensors' memory, the counts); None otherwise, or when a grad is missing or not a dense,
  // contiguous, aligned CPU tensor of its param's dtype and size (torch.Tensor itself, no subclass):
  // the caller then takes its general path, which names any problem. Writes nothing.
  py::object gather(py::handle params_list, double count) const {
    const size_t n = params_.size();
    if (!PyList_Check(params_list.ptr()) || static_cast<size_t>(PyList_GET_SIZE(params_list.ptr())) != n)
      return py::none();
    if (!counts_.is_none()) {
      const auto* c = static_cast<const float*>(py::reinterpret_borrow<py::array>(counts_).data());
      for (size_t i = 0; i < n; ++i)
        if (static_cast<double>(c[i]) != count) return py::none();
    }
    Gathered gathered;
    gathered.owner = this;
    gathered.held.resize(n);
    gathered.pointers.assign(1, std::vector<void*>(n));
    const Descriptors& t = tensor_;
    const auto* tensor_type = reinterpret_cast<PyTypeObject*>(tensor_type_.ptr());
    size_t at = 0, key_at = 0;
    for (size_t i = 0; i < n; ++i) {
      PyObject* p = PyTuple_GET_ITEM(params_.ptr(), i);
      PyObject* state = PyTuple_GET_ITEM(states_.ptr(), i);
      if (PyList_GET_ITEM(params_list.ptr(), i) != p || Py_TYPE(p) != types_[i] ||
          !holds(state_of_.ptr(), state_at_[i], p, state) || integer(t.data_ptr, p) != pointers_[at++])
        return py::none();
      PyObject* row = PyTuple_GET_ITEM(tensors_.ptr(), i);
      for (size_t k = 0; k < keys_.size(); ++k, ++key_at) {
        PyObject* buffer = PyTuple_GET_ITEM(row, k);
        if (!holds(state, key_at_[key_at], PyTuple_GET_ITEM(keys_.ptr(), k), buffer) ||
            (k < memory_keys_ && integer(t.data_ptr, buffer) != pointers_[at++]))
          return py::none();
      }
      py::object grad = get(t.grad, p);
      if (!grad || Py_TYPE(grad.ptr()) != tensor_type) return py::none();
      if (get(t.dtype, grad.ptr()).ptr() != dtype_.ptr() || get(t.layout, grad.ptr()).ptr() != layout_.ptr() ||
          get(t.is_cpu, grad.ptr()).ptr() != Py_True || call(t.is_neg, grad.ptr()).ptr() != Py_False ||
          call(t.is_contiguous, grad.ptr()).ptr() != Py_True || integer(t.numel, grad.ptr()) != numel_[i])
        return py::none();
      const long long pointer = integer(t.data_ptr, grad.ptr());
      if (pointer <= 0 || pointer % static_cast<long long>(itemsize_) != 0) return py::none();
      gathered.pointers[0][i] = reinterpret_cast<void*>(static_cast<uintptr_t>(pointer));
      gathered.held[i] = std::move(grad);
    }
    return py::cast(std::move(gathered));
  }

  // A param's or state tensor's type must reach torch.Tensor's own data_ptr and grad (a subclass that
  // overrides either is refused here, so that the descriptors called in gather() are its own).
  void check_type(py::handle tensor) const {
    const py::handle type = reinterpret_cast<PyObject*>(Py_TYPE(tensor.ptr()));
    if (PyObject_IsSubclass(type.ptr(), tensor_type_.ptr()) != 1 || type.attr("data_ptr").ptr() != tensor_.data_ptr.ptr() ||
        type.attr("grad").ptr() != tensor_.grad.ptr())
      throw py::type_error("TorchSteady: params and state must be torch.Tensor (or a subclass that keeps data_ptr and grad)");
  }

  // The step over grads gather() returned, with these variants and scalars (as Plan.step's); then
  // every count + 1.
  void run(const Gathered& gathered, py::sequence variants, py::sequence scalars, py::handle rounding) const {
    if (gathered.owner != this || gathered.pointers.empty()) throw py::value_error("TorchSteady.run: grads gathered by another");
    plan_object_.cast<const Plan&>().run(gathered.pointers, variants, scalars, rounding);
    if (!counts_.is_none()) {
      auto* c = static_cast<float*>(py::reinterpret_borrow<py::array>(counts_).mutable_data());
      for (size_t i = 0; i < params_.size(); ++i) c[i] += 1.0f;
    }
  }

 private:
  py::object plan_object_;
  py::tuple params_;
  py::dict state_of_;
  py::tuple states_, keys_;
  size_t memory_keys_ = 0;
  py::tuple tensors_;
  py::object dtype_, layout_, tensor_type_, counts_;
  Descriptors tensor_;
  std::vector<PyTypeObject*> types_;  // each param's type (held by the param)
  std::vector<Py_ssize_t> state_at_, key_at_;  // where each param's state sits in state_of, each key in its state
  std::vector<int64_t> numel_;
  std::vector<long long> pointers_;  // per param: its data pointer, then its state buffers' in key order
  size_t itemsize_ = 4;
};

}  // namespace

void register_torch_steady(py::module_& m) {
  py::class_<Gathered>(m, "TorchGathered", py::module_local(), "The grads of one steady step (TorchSteady.gather).");
  py::class_<TorchSteady>(m, "TorchSteady", py::module_local(),
                          "The steady step of a fusedopt.torch param group: gathers the grads of torch params.")
      .def(py::init<py::object, py::tuple, py::dict, py::tuple, py::tuple, size_t, py::tuple, py::object,
                    py::object, py::object, py::object>(),
           "plan"_a, "params"_a, "state_of"_a, "states"_a, "keys"_a, "memory_keys"_a, "tensors"_a, "dtype"_a, "layout"_a,
           "tensor_type"_a, "counts"_a)
      .def("gather", &TorchSteady::gather, "params_list"_a, "count"_a,
           "The grads when nothing but the grads changed; None (nothing written) otherwise.")
      .def("run", &TorchSteady::run, "gathered"_a, "variants"_a, "scalars"_a, "rounding"_a = py::none(),
           "The step over gathered grads (rounding: as Plan.step's); then every count + 1.");
}

}  // namespace fusedopt
