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

PyObject* interned(const char* name) { return PyUnicode_InternFromString(name); }

// obj.name, or obj.name() when call; a null handle (the Python error cleared) when it raises.
py::object attribute(py::handle obj, PyObject* name, bool call) {
  PyObject* r = call ? PyObject_CallMethodNoArgs(obj.ptr(), name) : PyObject_GetAttr(obj.ptr(), name);
  if (!r) PyErr_Clear();
  return py::reinterpret_steal<py::object>(r);
}

// The integer an attribute gives (data_ptr(), numel()), or -1 when it raises or is not an int.
long long integer(py::handle obj, PyObject* name) {
  const py::object r = attribute(obj, name, true);
  if (!r || !PyLong_Check(r.ptr())) return -1;
  const long long v = PyLong_AsLongLong(r.ptr());
  if (v == -1 && PyErr_Occurred()) PyErr_Clear();
  return v;
}

struct Names {
  PyObject* grad = interned("grad");
  PyObject* data_ptr = interned("data_ptr");
  PyObject* numel = interned("numel");
  PyObject* dtype = interned("dtype");
  PyObject* layout = interned("layout");
  PyObject* is_cpu = interned("is_cpu");
  PyObject* is_neg = interned("is_neg");
  PyObject* is_contiguous = interned("is_contiguous");
};

const Names& names() {
  static const Names* n = new Names();  // never freed: the interpreter may be finalizing at exit
  return *n;
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
        layout_(std::move(layout)), tensor_type_(std::move(tensor_type)), counts_(std::move(counts)) {
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
      pointers_.push_back(integer(params_[i], names().data_ptr));
      const auto row = tensors_[i].cast<py::tuple>();
      if (row.size() != keys_.size()) throw py::value_error("TorchSteady: one tensor per key");
      for (size_t k = 0; k < memory_keys_; ++k) pointers_.push_back(integer(row[k], names().data_ptr));
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
    const Names& nm = names();
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
    size_t at = 0;
    for (size_t i = 0; i < n; ++i) {
      py::handle p = PyTuple_GET_ITEM(params_.ptr(), i);
      if (PyList_GET_ITEM(params_list.ptr(), i) != p.ptr()) return py::none();
      PyObject* state = PyDict_GetItemWithError(state_of_.ptr(), p.ptr());
      if (state != PyTuple_GET_ITEM(states_.ptr(), i)) {
        PyErr_Clear();
        return py::none();
      }
      if (integer(p, nm.data_ptr) != pointers_[at++]) return py::none();
      py::handle row = PyTuple_GET_ITEM(tensors_.ptr(), i);
      for (size_t k = 0; k < keys_.size(); ++k) {
        py::handle t = PyTuple_GET_ITEM(row.ptr(), k);
        if (PyDict_GetItemWithError(state, PyTuple_GET_ITEM(keys_.ptr(), k)) != t.ptr()) {
          PyErr_Clear();
          return py::none();
        }
        if (k < memory_keys_ && integer(t, nm.data_ptr) != pointers_[at++]) return py::none();
      }
      py::object grad = attribute(p, nm.grad, false);
      if (!grad || Py_TYPE(grad.ptr()) != reinterpret_cast<PyTypeObject*>(tensor_type_.ptr())) return py::none();
      if (attribute(grad, nm.dtype, false).ptr() != dtype_.ptr() ||
          attribute(grad, nm.layout, false).ptr() != layout_.ptr() ||
          attribute(grad, nm.is_cpu, false).ptr() != Py_True || attribute(grad, nm.is_neg, true).ptr() != Py_False ||
          attribute(grad, nm.is_contiguous, true).ptr() != Py_True || integer(grad, nm.numel) != numel_[i])
        return py::none();
      const long long pointer = integer(grad, nm.data_ptr);
      if (pointer <= 0 || pointer % static_cast<long long>(itemsize_) != 0) return py::none();
      gathered.pointers[0][i] = reinterpret_cast<void*>(static_cast<uintptr_t>(pointer));
      gathered.held[i] = std::move(grad);
    }
    return py::cast(std::move(gathered));
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
