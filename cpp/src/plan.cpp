#include "plan.hpp"

#include <memory>

#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include "rule_table.hpp"
#include "tensor_lists.hpp"

namespace py = pybind11;
using namespace py::literals;

namespace fusedopt {
namespace {

using py::detail::array_proxy;
using py::detail::npy_api;

Namer from(const std::vector<std::string>& names) {
  return [&names](size_t i) { return names[i]; };
}

std::string grad_name(size_t i) { return "grads[" + std::to_string(i) + "]"; }

}  // namespace

Plan::Plan(py::sequence calls, Py_ssize_t n_params) : n_params_(n_params) {
  const auto& table = rule_table();
  for (py::handle c : calls) {
    const auto t = py::reinterpret_borrow<py::tuple>(c);
    if (t.size() != 6 && t.size() != 8)
      throw py::value_error("Plan: each call is (rule, params, buffers, indices, names, buffer names[, master, "
                            "master names])");
    Call call;
    call.rule = static_cast<int>(checked_int(t[0], "rule", 0, static_cast<long long>(table.size()) - 1));
    const auto params = t[1].cast<py::list>();
    const auto buffers = t[2].cast<py::list>();
    call.param_index = t[3].cast<std::vector<Py_ssize_t>>();
    call.param_names = t[4].cast<std::vector<std::string>>();
    call.buffer_names = t[5].cast<std::vector<std::vector<std::string>>>();
    const size_t n = params.size();
    call.n_buffers = static_cast<int>(buffers.size());
    if (n == 0 || call.param_index.size() != n || call.param_names.size() != n ||
        call.buffer_names.size() != buffers.size() || call.n_buffers + 2 > kMaxSlots)
      throw py::value_error("Plan: inconsistent call description");
    for (Py_ssize_t i : call.param_index)
      if (i < 0 || i >= n_params) throw py::value_error("Plan: param index out of range");
    py::handle first = params[0];
    call.dtypes.push_back(storage_dtype(first, call.param_names[0]));
    call.dtypes.push_back(call.dtypes[0]);  // grads have their params' dtype
    std::vector<std::string> first_names{call.param_names[0], "grads"};
    for (size_t k = 0; k < buffers.size(); ++k) {
      const auto list = buffers[k].cast<py::list>();
      if (list.size() != n || call.buffer_names[k].size() != n) throw py::value_error("Plan: one buffer per param");
      call.dtypes.push_back(storage_dtype(list[0], call.buffer_names[k][0]));
      first_names.push_back(call.buffer_names[k][0]);
    }
    refuse_mixing_float64(call.dtypes, first_names);
    call.dtype = call.dtypes[0] == kFloat64 ? kFloat64 : kFloat32;
    for (DType d : call.dtypes) call.mixed = call.mixed || d == kBFloat16 || d == kFloat16;
    const Namer param_name = from(call.param_names);
    call.pointers[0].resize(n);
    for (size_t i = 0; i < n; ++i) {
      call.pointers[0][i] = check_array(params[i], param_name, i, true, params[i], param_name, i, first,
                                        call.param_names[0]);
      call.params.push_back(py::reinterpret_borrow<py::object>(params[i]));
    }
    for (size_t k = 0; k < buffers.size(); ++k) {
      const auto list = buffers[k].cast<py::list>();
      const Namer name = from(call.buffer_names[k]);
      call.pointers[k + 2].resize(n);
      call.buffers.emplace_back();
      for (size_t i = 0; i < n; ++i) {
        call.pointers[k + 2][i] = check_array(list[i], name, i, true, params[i], param_name, i, list[0],
                                              call.buffer_names[k][0]);
        call.buffers.back().push_back(py::reinterpret_borrow<py::object>(list[i]));
      }
    }
    if (t.size() == 8 && !t[6].is_none()) {
      const auto master = t[6].cast<py::list>();
      call.master_names = t[7].cast<std::vector<std::string>>();
      if (master.size() != n || call.master_names.size() != n) throw py::value_error("Plan: one master copy per param");
      std::vector<DType> dtypes = call.dtypes;
      dtypes.push_back(storage_dtype(master[0], call.master_names[0]));
      refuse_bad_precision(dtypes, call.n_lists(), true, false, [&](size_t k) {
        return k == 0 ? call.param_names[0] : call.master_names[0];
      });
      const Namer name = from(call.master_names);
      for (size_t i = 0; i < n; ++i) {
        call.master.push_back(check_array(master[i], name, i, true, params[i], param_name, i, master[0],
                                          call.master_names[0]));
        call.master_arrays.push_back(py::reinterpret_borrow<py::object>(master[i]));
      }
    }
    call.ids.assign(call.param_index.begin(), call.param_index.end());
    call.offsets.resize(n + 1);
    call.offsets[0] = 0;
    for (size_t i = 0; i < n; ++i)
      call.offsets[i + 1] = call.offsets[i] + static_cast<int64_t>(py::reinterpret_borrow<py::array>(params[i]).size());
    call.itemsize = itemsize_of(call.dtypes[0]);
    const int index = static_cast<int>(calls_.size());
    const auto numel = [&call](size_t i) { return static_cast<size_t>(call.offsets[i + 1] - call.offsets[i]); };
    for (int k = 0; k < kMaxSlots; ++k)  // slot 1, the grads, is empty here
      for (size_t i = 0; i < call.pointers[k].size(); ++i)
        fixed_.add(call.pointers[k][i], numel(i) * itemsize_of(call.dtypes[static_cast<size_t>(k)]), index, k, i);
    for (size_t i = 0; i < call.master.size(); ++i) fixed_.add(call.master[i], numel(i) * 4, index, kMasterSlot, i);
    calls_.push_back(std::move(call));
  }
  fixed_.sort_and_refuse_overlaps([this](const Extent& e) { return name_of(e); });
}

// The grads among themselves and against the params and state; skipped when they sit where one of the
// last two steps' did (same pointers, and so the same sizes), as they often do in a training loop.
void Plan::refuse_grads_sharing_written_memory(const std::vector<std::vector<void*>>& grad_pointers) const {
  thread_local std::vector<void*> flat;
  flat.clear();
  for (const auto& pointers : grad_pointers) flat.insert(flat.end(), pointers.begin(), pointers.end());
  {
    const std::lock_guard<std::mutex> lock(checked_grads_mutex_);
    if (checked_grads_.contains(flat)) return;
  }
  thread_local std::vector<Extent> grads;
  grads.clear();
  for (size_t c = 0; c < calls_.size(); ++c) {
    const Call& call = calls_[c];
    for (size_t i = 0; i < grad_pointers[c].size(); ++i) {
      const auto begin = reinterpret_cast<uintptr_t>(grad_pointers[c][i]);
      const auto bytes = static_cast<uintptr_t>(call.offsets[i + 1] - call.offsets[i]) * call.itemsize;
      grads.push_back({begin, begin + bytes, static_cast<int>(c), 1, i});
    }
  }
  fixed_.refuse_grads(grads, [this](const Extent& e) { return name_of(e); });
  const std::lock_guard<std::mutex> lock(checked_grads_mutex_);
  checked_grads_.insert(flat);
}

std::string Plan::name_of(const Extent& e) const {
  const Call& call = calls_[static_cast<size_t>(e.call)];
  if (e.slot == 0) return call.param_names[e.index];
  if (e.slot == 1) return grad_name(static_cast<size_t>(call.param_index[e.index]));
  if (e.slot == kMasterSlot) return call.master_names[e.index];
  return call.buffer_names[static_cast<size_t>(e.slot - 2)][e.index];
}

bool Plan::step(py::object grads, py::sequence variants, py::sequence scalars, py::handle rounding) const {
  if (!PyList_Check(grads.ptr()) && !PyTuple_Check(grads.ptr()))
    throw py::type_error("grads: expected a list of arrays, got " + type_name(grads));
  const Py_ssize_t n_grads = PySequence_Fast_GET_SIZE(grads.ptr());
  if (n_grads != n_params_)
    throw py::value_error("grads: expected " + std::to_string(n_params_) +
                          " arrays (one per param, None to skip one), got " + std::to_string(n_grads));
  for (const Call& call : calls_)
    for (Py_ssize_t i : call.param_index)
      if (PySequence_Fast_GET_ITEM(grads.ptr(), i) == Py_None) return false;

  // A tuple of the grads holds a reference to every grad until the kernels are done (a list could be
  // emptied by another thread while they run).
  const py::tuple held = py::reinterpret_steal<py::tuple>(PySequence_Tuple(grads.ptr()));
  if (!held) throw py::error_already_set();
  std::vector<std::vector<void*>> grad_pointers(calls_.size());
  for (size_t c = 0; c < calls_.size(); ++c) {
    const Call& call = calls_[c];
    const Namer param_name = from(call.param_names);
    py::handle first = call.params[0];
    grad_pointers[c].resize(call.params.size());
    for (size_t i = 0; i < call.params.size(); ++i) {
      const Py_ssize_t g = call.param_index[i];
      py::handle grad = PyTuple_GET_ITEM(held.ptr(), g);
      grad_pointers[c][i] = check_array(grad, [](size_t j) { return grad_name(j); }, static_cast<size_t>(g), false,
                                        call.params[i], param_name, i, first, call.param_names[0]);
    }
  }
  run(grad_pointers, variants, scalars, rounding);
  return true;
}

void Plan::run(const std::vector<std::vector<void*>>& grad_pointers, py::sequence variants,
               py::sequence scalars, py::handle rounding) const {
  // Everything checked before the first write: the params and buffers still writable, the variants
  // and scalars, the grads clear of the memory the step writes.
  if (py::len(variants) != calls_.size() || py::len(scalars) != calls_.size() || grad_pointers.size() != calls_.size())
    throw py::value_error("Plan.step: one variant and one scalars per call");
  if (!rounding.is_none() && (!PySequence_Check(rounding.ptr()) || py::len(rounding) != calls_.size()))
    throw py::value_error("Plan.step: rounding is None or one (seed, step) per call");
  std::vector<ScalarBuffer> converted(calls_.size());
  std::vector<StepKernel> kernels(calls_.size());
  std::vector<MixedKernel> mixed_kernels(calls_.size());
  std::vector<MixedStorage> storage(calls_.size());
  const KernelTable& table = active_kernels();
  for (size_t c = 0; c < calls_.size(); ++c) {
    const Call& call = calls_[c];
    if (grad_pointers[c].size() != call.params.size()) throw py::value_error("Plan.run: one grad per param");
    const int variant = static_cast<int>(checked_int(variants[c], "variant", 0, kMaxVariants - 1));
    const RuleDescription& rule = checked_rule(call.rule, variant, call.n_buffers + 2);
    for (size_t i = 0; i < call.params.size(); ++i) {
      if (!(array_proxy(call.params[i].ptr())->flags & npy_api::NPY_ARRAY_WRITEABLE_))
        throw py::value_error(call.param_names[i] + ": array is read-only; it is updated in place, so it must be writable");
      for (size_t k = 0; k < call.buffers.size(); ++k)
        if (!(array_proxy(call.buffers[k][i].ptr())->flags & npy_api::NPY_ARRAY_WRITEABLE_))
          throw py::value_error(call.buffer_names[k][i] + ": array is read-only; it is updated in place");
      if (!call.master.empty() && !(array_proxy(call.master_arrays[i].ptr())->flags & npy_api::NPY_ARRAY_WRITEABLE_))
        throw py::value_error(call.master_names[i] + ": array is read-only; it is updated in place");
    }
    const StochasticRounding sr =
        rounding.is_none() ? StochasticRounding{} : stochastic_rounding(rounding.cast<py::sequence>()[c]);
    if (sr.on)
      refuse_bad_precision(call.dtypes, call.n_lists(), false, true, [&](size_t k) {
        return k == 0 ? call.param_names[0] : k == 1 ? grad_name(0) : call.buffer_names[k - 2][0];
      });
    if (call.mixed) {
      MixedStorage& m = storage[c];
      for (size_t k = 0; k < call.dtypes.size(); ++k) m.type[k] = static_cast<unsigned char>(call.dtypes[k]);
      m.master = call.master.empty() ? nullptr : call.master.data();
      m.stochastic = sr.on;
      m.seed = sr.seed;
      m.step = sr.step;
      m.tensor_ids = call.ids.data();
      mixed_kernels[c] = table.optimizers[call.rule].mixed[variant];
    }
    converted[c] = convert_scalars(rule, call.dtype, scalars[c]);
    kernels[c] = table.optimizers[call.rule].variants[call.dtype][variant];
  }
  refuse_grads_sharing_written_memory(grad_pointers);
  std::vector<TensorListView> views(calls_.size());
  for (size_t c = 0; c < calls_.size(); ++c) {
    const Call& call = calls_[c];
    TensorListView& v = views[c];
    v.n_tensors = static_cast<int64_t>(call.params.size());
    v.offsets = call.offsets.data();
    v.slots[0] = call.pointers[0].data();
    v.slots[1] = grad_pointers[c].data();
    for (int k = 2; k < kMaxSlots; ++k) v.slots[k] = call.pointers[k].empty() ? nullptr : call.pointers[k].data();
    set_run_settings(v);
  }
  py::gil_scoped_release release;
  for (size_t c = 0; c < calls_.size(); ++c) {
    if (calls_[c].mixed) mixed_kernels[c](views[c], storage[c], converted[c].bytes);
    else kernels[c](views[c], converted[c].bytes);
  }
}

void register_plan(py::module_& m) {
  py::class_<Plan>(m, "Plan", py::module_local(), "An optimizer's params and state, checked once; step() checks and passes the grads.")
      .def(py::init([](py::sequence calls, py::handle n_params) {
             return std::make_unique<Plan>(
                 calls, static_cast<Py_ssize_t>(checked_int(n_params, "n_params", 0, PY_SSIZE_T_MAX)));
           }),
           "calls"_a, "n_params"_a)
      .def("step", &Plan::step, "grads"_a, "variants"_a, "scalars"_a, "rounding"_a = py::none(),
           "One step of every call; False (nothing written) when a grad is None.")
      .def_property_readonly("n_calls", &Plan::n_calls);
}

}  // namespace fusedopt
