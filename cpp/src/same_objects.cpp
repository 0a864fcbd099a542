// The objects of a list, remembered by weak reference, so that "is this the list of objects I
// checked last time?" costs one C loop of pointer comparisons and holds nothing alive. The CUDA
// plan's steady step (python/fusedopt/backends/cuda.py) asks it of the grads: CuPy arrays cannot be
// re-pointed, so the same objects are the same memory, already checked and already in the device
// table. A freed object's reference reads None, so a new object at a reused address never matches.
#include <pybind11/pybind11.h>

#include <vector>

namespace py = pybind11;

namespace fusedopt {
namespace {

class SameObjects {
 public:
  SameObjects() = default;
  SameObjects(const SameObjects&) = delete;
  SameObjects& operator=(const SameObjects&) = delete;
  ~SameObjects() { forget(); }

  // True when `items` (a list or tuple) holds exactly the remembered objects, in order, all alive.
  bool same(py::handle items) const {
    if (refs_.empty() || !(PyList_Check(items.ptr()) || PyTuple_Check(items.ptr()))) return false;
    const Py_ssize_t n = PySequence_Fast_GET_SIZE(items.ptr());
    if (n != static_cast<Py_ssize_t>(refs_.size())) return false;
    PyObject** objects = PySequence_Fast_ITEMS(items.ptr());
    for (Py_ssize_t i = 0; i < n; ++i)
      if (referent(refs_[static_cast<size_t>(i)]) != objects[i]) return false;
    return true;
  }

  // Remembers the objects of `items`; when one cannot be weakly referenced (None, a float), nothing
  // is remembered and same() answers False.
  void remember(py::handle items) {
    forget();
    if (!(PyList_Check(items.ptr()) || PyTuple_Check(items.ptr()))) return;
    const py::tuple held = py::tuple(py::reinterpret_borrow<py::object>(items));  // the list may change meanwhile
    refs_.reserve(held.size());
    for (const py::handle item : held) {
      PyObject* ref = PyWeakref_NewRef(item.ptr(), nullptr);
      if (ref == nullptr) {
        PyErr_Clear();
        forget();
        return;
      }
      refs_.push_back(ref);
    }
  }

  void forget() {
    for (PyObject* ref : refs_) Py_DECREF(ref);
    refs_.clear();
  }

 private:
  // The object a weak reference points to (borrowed, only compared), or None once it is freed.
  static PyObject* referent(PyObject* ref) {
#if PY_VERSION_HEX >= 0x030D0000
    PyObject* object = nullptr;
    if (PyWeakref_GetRef(ref, &object) <= 0) return Py_None;
    Py_DECREF(object);  // still alive: the list being compared holds it
    return object;
#else
    return PyWeakref_GET_OBJECT(ref);
#endif
  }

  std::vector<PyObject*> refs_;
};

}  // namespace

void register_same_objects(py::module_& m) {
  py::class_<SameObjects>(m, "SameObjects",
                          "The objects of a list, held by weak reference: same(items) is True while items holds "
                          "exactly those objects again, in order (a C loop; nothing kept alive).")
      .def(py::init<>())
      .def("same", &SameObjects::same, py::arg("items"))
      .def("remember", &SameObjects::remember, py::arg("items"))
      .def("forget", &SameObjects::forget);
}

}  // namespace fusedopt
