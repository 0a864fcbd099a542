// Bindings of the fused CPU optimizer kernels, generic over the registered rules: check the lists,
// release the GIL, run. No math and no hyperparameter here: the Python spec of each optimizer
// computes the rule's scalars, which arrive as bytes (fusedopt.functional).
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <vector>

#include "plan.hpp"
#include "rule_table.hpp"
#include "tensor_lists.hpp"

namespace py = pybind11;
using namespace py::literals;

namespace fusedopt {
namespace {

// One step of one rule variant over lists[0] (params), lists[1] (grads) and the state lists; with
// master, a float32 copy of 16-bit params that the step reads and updates; with rounding (seed, step),
// bfloat16 writes round stochastically.
void step(py::handle rule_arg, py::handle variant_arg, py::tuple names, py::sequence lists, py::bytes scalars,
          py::handle master, py::handle rounding) {
  if (names.size() != py::len(lists)) throw py::value_error("step: one name per list");
  const int rule = static_cast<int>(checked_int(rule_arg, "rule", 0, kOptimizerCount - 1));
  const int variant = static_cast<int>(checked_int(variant_arg, "variant", 0, kMaxVariants - 1));
  const RuleDescription& r = checked_rule(rule, variant, static_cast<int>(names.size()));
  std::vector<CheckedLists::Arg> args;
  for (size_t k = 0; k < names.size(); ++k) {
    const char* name = PyUnicode_Check(names[k].ptr()) ? PyUnicode_AsUTF8(names[k].ptr()) : nullptr;
    if (name == nullptr) throw py::type_error("step: names must be str");
    args.push_back({name, lists[k], k != 1});
  }
  const bool has_master = !master.is_none();
  if (has_master) args.push_back({"master_params", master, true});
  const StochasticRounding sr = stochastic_rounding(rounding);
  const CheckedLists checked(args);
  const size_t n_lists = names.size();
  refuse_bad_precision(checked.dtypes(), n_lists, has_master, sr.on,
                       [&](size_t k) { return std::string(args[k].name) + "[0]"; });
  const ScalarBuffer s = convert_scalars(r, checked.dtype(), scalars);
  const TensorListView view = checked.view();
  if (!checked.mixed()) {
    const StepKernel kernel = active_kernels().optimizers[rule].variants[checked.dtype()][variant];
    py::gil_scoped_release release;
    kernel(view, s.bytes);
    return;
  }
  std::vector<int64_t> ids(static_cast<size_t>(view.n_tensors));
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int64_t>(i);
  MixedStorage storage = checked.storage();
  storage.master = has_master ? checked.pointers(n_lists) : nullptr;
  storage.stochastic = sr.on;
  storage.seed = sr.seed;
  storage.step = sr.step;
  storage.tensor_ids = ids.data();
  const MixedKernel kernel = active_kernels().optimizers[rule].mixed[variant];
  py::gil_scoped_release release;
  kernel(view, storage, s.bytes);
}

py::list describe_rules() {
  py::list out;
  for (const RuleDescription& r : rule_table()) {
    std::vector<unsigned> present(r.present, r.present + r.n_variants);
    std::vector<int> norms(r.norms, r.norms + r.n_variants);
    out.append(py::dict("name"_a = r.name, "cpp_name"_a = r.cpp_name, "flags"_a = r.flags, "slots"_a = r.slots,
                        "scalars"_a = r.scalars, "present"_a = present, "per_tensor_norms"_a = r.per_tensor_norms,
                        "norms"_a = norms));
  }
  return out;
}

void stream_adam_pattern(py::handle params, py::handle grads, py::handle exp_avgs, py::handle exp_avg_sqs) {
  const CheckedLists lists({{"params", params, true},
                            {"grads", grads, false},
                            {"exp_avgs", exp_avgs, true},
                            {"exp_avg_sqs", exp_avg_sqs, true}});
  lists.require_one_type("stream_adam_pattern");
  const TensorListView view = lists.view();
  const Kernel<double> kernel = active_kernels().stream_adam_pattern[lists.dtype()];
  py::gil_scoped_release release;
  kernel(view, 0.0);
}

// (sum of squares, all finite) over a list of gradients, read only.
py::tuple grad_norm(py::handle grads) {
  const CheckedLists lists({{"grads", grads, false}});
  const TensorListView view = lists.view();
  const ReduceKernel kernel = active_kernels().grad_norm[lists.list_dtype(0)];
  double out[2];
  {
    py::gil_scoped_release release;
    kernel(view, out);
  }
  return py::make_tuple(out[0], out[1] == 0.0);
}

void stream_write(py::handle arrays, double value) {
  const CheckedLists lists({{"arrays", arrays, true}});
  lists.require_one_type("stream_write");
  const TensorListView view = lists.view();
  const Kernel<double> kernel = active_kernels().stream_write[lists.dtype()];
  py::gil_scoped_release release;
  kernel(view, value);
}

}  // namespace

void register_optimizers(py::module_& m) {
  m.def("rules", &describe_rules,
        "The registered rules, in index order: name, cpp_name, flags, slots and scalars (comma-separated "
        "names), present (per variant, bit k: slot k in use), per_tensor_norms (a two-pass rule), norms (per "
        "variant: the norms its first pass sums; -1 for an elementwise rule).");
  m.def("step", &step, "rule"_a, "variant"_a, "names"_a, "lists"_a, "scalars"_a, py::kw_only(),
        "master"_a = py::none(), "rounding"_a = py::none(),
        "One fused step of a rule variant over lists (params, grads, state lists in use), in place; scalars: "
        "the rule's fields as float64 bytes (see fusedopt.functional). Lists may be float64 (all of them) or "
        "any mix of float32, bfloat16 and float16, computed in float32; master: float32 copies of 16-bit "
        "params, read and updated, the params written rounded; rounding: (seed, step) to round bfloat16 "
        "writes stochastically.");
  m.def("grad_norm", &grad_norm, "grads"_a,
        "(sum of squares in float64, all finite) of every element of grads, in one read-only pass; the same "
        "bits for any thread count and ISA.");
  m.def("stream_adam_pattern", &stream_adam_pattern, "params"_a, "grads"_a, "exp_avgs"_a, "exp_avg_sqs"_a,
        "Bandwidth probe for benchmarks: Adam's traffic (read 4 arrays, write 3), values unchanged.");
  m.def("stream_write", &stream_write, "arrays"_a, "value"_a,
        "Bandwidth probe for benchmarks: fills arrays with value (write-only traffic).");
  register_plan(m);
}

}  // namespace fusedopt
