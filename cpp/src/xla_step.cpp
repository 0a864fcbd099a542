// fusedopt.jax's step inside an XLA computation (python/fusedopt/jax): a CPU custom-call target of XLA's
// original API with a status and an opaque string (registered with jax.ffi.register_ffi_target(...,
// api_version=0), called by jax.ffi.ffi_call(..., custom_call_api_version=3)). That API passes plain
// pointers, so no XLA header is needed. The step runs the same kernel as fusedopt.functional on the
// buffers XLA hands over: the params and state outputs alias their inputs (XLA has copied an input that
// was not donated), so the in-place kernel writes the outputs. The step's scalars come from the same
// Python code as every other step's (the spec's), called here under the GIL with the step count and lr
// the computation holds, which may be traced values inside jax.jit.
#include <pybind11/pybind11.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "rule_table.hpp"
#include "tensor_lists.hpp"

namespace py = pybind11;
using namespace py::literals;

namespace fusedopt {
namespace {

// One call's layout, from the opaque string python/fusedopt/jax writes (decimal integers separated by
// spaces): "key rule dtype lr_type n_tensors slots numel_0 ... numel_{n_tensors - 1}". key names the
// transformation to python/fusedopt/jax's scalars function; lr_type: 0 no lr operand, 1 float32, 2
// float64; slots: the rule's slots (bit k: slot k) the call passes, in slot order: params, grads and
// the state lists the hyperparameters use (each variant uses some of them).
struct XlaLayout {
  long long key = 0;
  int rule = 0, lr_type = 0;
  unsigned slots = 0;
  DType dtype = kFloat32;
  std::vector<int64_t> offsets{0};
};

bool parse(const std::string& text, XlaLayout& out) {
  const char* p = text.c_str();
  auto next = [&p](long long& value) {
    char* end = nullptr;
    value = std::strtoll(p, &end, 10);
    if (end == p) return false;
    p = end;
    return true;
  };
  long long key, rule, dtype, lr_type, n, slots;
  if (!next(key) || !next(rule) || !next(dtype) || !next(lr_type) || !next(n) || !next(slots)) return false;
  if (rule < 0 || rule >= kOptimizerCount || (dtype != kFloat32 && dtype != kFloat64) || lr_type < 0 || lr_type > 2 ||
      n < 0 || (slots & 3) != 3 || slots >= (1 << kMaxSlots))
    return false;
  out.key = key;
  out.rule = static_cast<int>(rule);
  out.dtype = static_cast<DType>(dtype);
  out.lr_type = static_cast<int>(lr_type);
  out.slots = static_cast<unsigned>(slots);
  for (long long t = 0; t < n; ++t) {
    long long numel;
    if (!next(numel) || numel < 0) return false;
    out.offsets.push_back(out.offsets.back() + numel);
  }
  return *p == '\0';
}

// The parsed layout of an opaque string (parsed once; XLA passes the same string at every call).
const XlaLayout* layout_of(const char* opaque, size_t size) {
  static std::mutex mutex;
  static std::unordered_map<std::string, std::unique_ptr<XlaLayout>> known;
  std::string text(opaque, size);
  const std::lock_guard<std::mutex> lock(mutex);
  auto found = known.find(text);
  if (found != known.end()) return found->second.get();
  auto layout = std::make_unique<XlaLayout>();
  if (!parse(text, *layout)) return nullptr;
  return known.emplace(std::move(text), std::move(layout)).first->second.get();
}

PyObject* g_scalars_for = nullptr;  // python/fusedopt/jax's _scalars_for (a strong reference, never freed)

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "fusedopt: XLA step: %s\n", what.c_str());
  std::abort();
}

// The step's scalars (the rule's fields as doubles) and variant: _scalars_for(key, step, lr), under the GIL.
struct HostScalars {
  ScalarBuffer scalars;
  int variant = 0;
};
HostScalars host_scalars(const XlaLayout& layout, long long step, double lr) {
  const RuleDescription& rule = rule_table()[static_cast<size_t>(layout.rule)];
  const py::gil_scoped_acquire gil;
  if (g_scalars_for == nullptr) fail("no scalars function (fusedopt.jax registers it)");
  // A Ctrl-C that lands in the call is put back for Python to raise after the step (nothing here can
  // raise it), and the call made again; any other exception is a bug of fusedopt.jax.
  bool interrupted = false;
  PyObject* result = nullptr;
  for (int attempt = 0; attempt < 3 && result == nullptr; ++attempt) {
    result = layout.lr_type == 0 ? PyObject_CallFunction(g_scalars_for, "LLO", layout.key, step, Py_None)
                                 : PyObject_CallFunction(g_scalars_for, "LLd", layout.key, step, lr);
    if (result != nullptr || !PyErr_ExceptionMatches(PyExc_KeyboardInterrupt)) break;
    PyErr_Clear();
    interrupted = true;
  }
  if (interrupted) PyErr_SetInterrupt();
  if (result == nullptr) {
    PyErr_Print();
    fail("fusedopt.jax._scalars_for raised");
  }
  const py::object owned = py::reinterpret_steal<py::object>(result);
  char* data = nullptr;
  Py_ssize_t size = 0;
  if (!PyTuple_Check(result) || PyTuple_GET_SIZE(result) != 2 ||
      PyBytes_AsStringAndSize(PyTuple_GET_ITEM(result, 0), &data, &size) != 0 ||
      size != static_cast<Py_ssize_t>(rule.n_fields * sizeof(double)))
    fail("_scalars_for gave no (bytes of the rule's fields, variant)");
  HostScalars out;
  out.variant = static_cast<int>(PyLong_AsLong(PyTuple_GET_ITEM(result, 1)));
  if (PyErr_Occurred() || out.variant < 0 || out.variant >= rule.n_variants) fail("_scalars_for gave a bad variant");
  out.scalars = scalars_of_values(rule, layout.dtype, data);
  return out;
}

}  // namespace

// in: the step (int32), lr (of lr_type; a float32 0 when there is none), then each passed slot's
// n_tensors arrays in slot order (params, grads, state lists); out: an array of pointers to the outputs,
// the params' then each state list's. The variant's lists go to the kernel; the others pass through.
extern "C" void fusedopt_xla_step(void* out, const void** in, const char* opaque, size_t opaque_len, void* status) {
  (void)status;  // python/fusedopt/jax checks every array when it traces the call
  const XlaLayout* layout = layout_of(opaque, opaque_len);
  if (layout == nullptr) fail("bad layout string " + std::string(opaque, opaque_len));
  const size_t n = layout->offsets.size() - 1;
  const long long step = *static_cast<const int32_t*>(in[0]);
  const double lr = layout->lr_type == 2 ? *static_cast<const double*>(in[1]) : *static_cast<const float*>(in[1]);
  const HostScalars host = host_scalars(*layout, step, lr);
  const unsigned present = rule_table()[static_cast<size_t>(layout->rule)].present[host.variant];
  if ((present & ~layout->slots) != 0) fail("the step's variant uses a state list the call does not pass");
  void* const* outs = static_cast<void* const*>(out);
  std::vector<void*> lists[kMaxSlots];
  int used = 0;
  for (int k = 0; k < kMaxSlots; ++k) {
    if (!((present >> k) & 1u)) continue;
    const size_t position = static_cast<size_t>(rules::popcount(layout->slots & ((1u << k) - 1u)));  // among the passed
    if (k == 1) {
      for (size_t t = 0; t < n; ++t) lists[used].push_back(const_cast<void*>(in[2 + n + t]));
    } else {
      const size_t first = (k == 0 ? 0 : position - 1) * n;  // outputs: params, then the passed state lists
      lists[used].assign(outs + first, outs + first + n);
    }
    ++used;
  }
  TensorListView view{};
  view.n_tensors = static_cast<int64_t>(n);
  view.offsets = layout->offsets.data();
  for (int k = 0; k < used; ++k) view.slots[k] = lists[k].data();
  set_run_settings(view);
  if (n == 0) return;
  const StepKernel kernel = active_kernels().optimizers[layout->rule].variants[layout->dtype][host.variant];
  kernel(view, host.scalars.bytes);
}

void register_xla_step(py::module_& m) {
  m.def(
      "xla_step_target", [] { return py::capsule(reinterpret_cast<void*>(&fusedopt_xla_step), "xla._CUSTOM_CALL_TARGET"); },
      "fusedopt.jax's XLA CPU custom-call target (a PyCapsule for jax.ffi.register_ffi_target, api_version=0).");
  m.def(
      "set_xla_scalars",
      [](py::object f) {
        if (!PyCallable_Check(f.ptr())) throw py::type_error("set_xla_scalars: expected a callable");
        PyObject* old = g_scalars_for;
        g_scalars_for = f.release().ptr();
        Py_XDECREF(old);
      },
      "f"_a, "fusedopt.jax's scalars function: f(key, step, lr or None) -> (bytes of the rule's fields, variant).");
}

}  // namespace fusedopt
