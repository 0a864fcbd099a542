// Bindings of the fused CPU optimizer kernels: check the lists, release the GIL, run. No math here;
// hyperparameter ranges are checked by fusedopt.functional before it calls in.
#include <pybind11/pybind11.h>

#include <vector>

#include "tensor_lists.hpp"

namespace py = pybind11;
using namespace py::literals;

namespace fusedopt {
namespace {

template <typename Hyper>
void run(const Kernel<Hyper> (&kernels)[2], const CheckedLists& lists, const Hyper& h) {
  const TensorListView view = lists.view();
  const Kernel<Hyper> kernel = kernels[lists.dtype()];
  py::gil_scoped_release release;
  kernel(view, h);
}

void require(bool needed, py::handle list, const char* name, const char* because) {
  if (needed && list.is_none()) throw py::value_error(std::string(name) + ": required when " + because);
}

void check_step(long long step) {
  if (step < 1) throw py::value_error("step: expected an integer >= 1 (the step being taken), got " + std::to_string(step));
}

void sgd(py::handle params, py::handle grads, py::handle momentum_buffers, double lr, double momentum,
         double dampening, double weight_decay, bool nesterov, bool maximize, bool first_step) {
  const bool has_momentum = momentum != 0.0;
  require(has_momentum, momentum_buffers, "momentum_buffers", "momentum != 0");
  const CheckedLists lists({{"params", params, true},
                            {"grads", grads, false},
                            {"momentum_buffers", has_momentum ? momentum_buffers : py::none(), true}});
  run(active_kernels().sgd, lists,
      SgdHyper{lr, momentum, dampening, weight_decay, nesterov, maximize, first_step});
}

void adagrad(py::handle params, py::handle grads, py::handle state_sums, long long step, double lr,
             double lr_decay, double weight_decay, double eps, bool maximize) {
  check_step(step);
  const CheckedLists lists({{"params", params, true}, {"grads", grads, false}, {"state_sums", state_sums, true}});
  run(active_kernels().adagrad, lists, AdagradHyper{lr, lr_decay, weight_decay, eps, step, maximize});
}

void rmsprop(py::handle params, py::handle grads, py::handle square_avgs, py::handle grad_avgs,
             py::handle momentum_buffers, double lr, double alpha, double eps, double weight_decay,
             double momentum, bool centered, bool maximize) {
  require(centered, grad_avgs, "grad_avgs", "centered=True");
  require(momentum > 0.0, momentum_buffers, "momentum_buffers", "momentum > 0");
  const CheckedLists lists({{"params", params, true},
                            {"grads", grads, false},
                            {"square_avgs", square_avgs, true},
                            {"grad_avgs", centered ? grad_avgs : py::none(), true},
                            {"momentum_buffers", momentum > 0.0 ? momentum_buffers : py::none(), true}});
  run(active_kernels().rmsprop, lists, RmspropHyper{lr, alpha, eps, weight_decay, momentum, centered, maximize});
}

void adam(py::handle params, py::handle grads, py::handle exp_avgs, py::handle exp_avg_sqs,
          py::handle max_exp_avg_sqs, long long step, double lr, double beta1, double beta2, double eps,
          double weight_decay, bool amsgrad, bool maximize, bool decoupled_weight_decay) {
  check_step(step);
  require(amsgrad, max_exp_avg_sqs, "max_exp_avg_sqs", "amsgrad=True");
  const CheckedLists lists({{"params", params, true},
                            {"grads", grads, false},
                            {"exp_avgs", exp_avgs, true},
                            {"exp_avg_sqs", exp_avg_sqs, true},
                            {"max_exp_avg_sqs", amsgrad ? max_exp_avg_sqs : py::none(), true}});
  const WeightDecay mode = decoupled_weight_decay ? WeightDecay::Decoupled : WeightDecay::L2;
  run(active_kernels().adam, lists,
      AdamHyper{lr, beta1, beta2, eps, weight_decay, step, amsgrad, maximize, mode});
}

void stream_adam_pattern(py::handle params, py::handle grads, py::handle exp_avgs, py::handle exp_avg_sqs) {
  const CheckedLists lists({{"params", params, true},
                            {"grads", grads, false},
                            {"exp_avgs", exp_avgs, true},
                            {"exp_avg_sqs", exp_avg_sqs, true}});
  run(active_kernels().stream_adam_pattern, lists, 0.0);
}

void stream_write(py::handle arrays, double value) {
  const CheckedLists lists({{"arrays", arrays, true}});
  run(active_kernels().stream_write, lists, value);
}

// Adam's per-step scalars as the rules header computes them, in struct order (for GPU kernels and tests).
py::tuple adam_scalars(bool float64, long long step, double lr, double beta1, double beta2, double eps,
                       double weight_decay, bool amsgrad, bool maximize, bool decoupled_weight_decay) {
  check_step(step);
  const AdamHyper h{lr, beta1, beta2, eps, weight_decay, step, amsgrad, maximize,
                    decoupled_weight_decay ? WeightDecay::Decoupled : WeightDecay::L2};
  auto pack = [](const auto& s) -> py::tuple {
    return py::make_tuple(s.grad_sign, s.l2, s.decay, s.beta1, s.one_minus_beta1, s.beta2, s.one_minus_beta2,
                          s.step_size, s.eps);
  };
  return float64 ? pack(rules::adam_scalars<double>(h)) : pack(rules::adam_scalars<float>(h));
}

py::tuple sgd_scalars(bool float64, double lr, double momentum, double dampening, double weight_decay,
                      bool nesterov, bool maximize) {
  const SgdHyper h{lr, momentum, dampening, weight_decay, nesterov, maximize, false};
  auto pack = [](const auto& s) -> py::tuple {
    return py::make_tuple(s.grad_sign, s.weight_decay, s.momentum, s.one_minus_dampening, s.lr);
  };
  return float64 ? pack(rules::sgd_scalars<double>(h)) : pack(rules::sgd_scalars<float>(h));
}

py::tuple adagrad_scalars(bool float64, long long step, double lr, double lr_decay, double weight_decay, double eps,
                          bool maximize) {
  check_step(step);
  const AdagradHyper h{lr, lr_decay, weight_decay, eps, step, maximize};
  auto pack = [](const auto& s) -> py::tuple { return py::make_tuple(s.grad_sign, s.weight_decay, s.clr, s.eps); };
  return float64 ? pack(rules::adagrad_scalars<double>(h)) : pack(rules::adagrad_scalars<float>(h));
}

py::tuple rmsprop_scalars(bool float64, double lr, double alpha, double eps, double weight_decay, double momentum,
                          bool centered, bool maximize) {
  const RmspropHyper h{lr, alpha, eps, weight_decay, momentum, centered, maximize};
  auto pack = [](const auto& s) -> py::tuple {
    return py::make_tuple(s.grad_sign, s.weight_decay, s.alpha, s.one_minus_alpha, s.eps, s.momentum, s.lr);
  };
  return float64 ? pack(rules::rmsprop_scalars<double>(h)) : pack(rules::rmsprop_scalars<float>(h));
}

// The checks of a step without the step: lets an optimizer check all its calls before the first writes.
void check_lists(py::handle params, py::handle grads, const py::args& buffers) {
  static const char* const names[] = {"buffers[0]", "buffers[1]", "buffers[2]"};
  if (buffers.size() > 3) throw py::value_error("check_lists: at most 3 buffer lists");
  std::vector<ListArg> lists = {{"params", params, true}, {"grads", grads, false}};
  for (size_t k = 0; k < buffers.size(); ++k) lists.push_back({names[k], buffers[k], true});
  CheckedLists(lists.data(), lists.data() + lists.size());
}

}  // namespace

void register_optimizers(py::module_& m) {
  m.def("check_lists", &check_lists, "params"_a, "grads"_a,
        "Checks params, grads and state lists as a step would, and writes nothing.");
  m.def("stream_adam_pattern", &stream_adam_pattern, "params"_a, "grads"_a, "exp_avgs"_a, "exp_avg_sqs"_a,
        "Bandwidth probe for benchmarks: Adam's traffic (read 4 arrays, write 3), values unchanged.");
  m.def("stream_write", &stream_write, "arrays"_a, "value"_a,
        "Bandwidth probe for benchmarks: fills arrays with value (write-only traffic).");
  m.def("adam_scalars", &adam_scalars, py::kw_only(), "float64"_a, "step"_a, "lr"_a, "beta1"_a, "beta2"_a, "eps"_a,
        "weight_decay"_a, "amsgrad"_a, "maximize"_a, "decoupled_weight_decay"_a,
        "Adam's per-step scalars (grad_sign, l2, decay, beta1, 1-beta1, beta2, 1-beta2, step_size, eps).");
  m.def("sgd_scalars", &sgd_scalars, py::kw_only(), "float64"_a, "lr"_a, "momentum"_a, "dampening"_a,
        "weight_decay"_a, "nesterov"_a, "maximize"_a, "SGD's per-step scalars, in SgdScalars order.");
  m.def("adagrad_scalars", &adagrad_scalars, py::kw_only(), "float64"_a, "step"_a, "lr"_a, "lr_decay"_a,
        "weight_decay"_a, "eps"_a, "maximize"_a, "Adagrad's per-step scalars, in AdagradScalars order.");
  m.def("rmsprop_scalars", &rmsprop_scalars, py::kw_only(), "float64"_a, "lr"_a, "alpha"_a, "eps"_a,
        "weight_decay"_a, "momentum"_a, "centered"_a, "maximize"_a,
        "RMSprop's per-step scalars, in RmspropScalars order.");
  m.def("sgd", &sgd, "params"_a, "grads"_a, "momentum_buffers"_a, py::kw_only(), "lr"_a, "momentum"_a,
        "dampening"_a, "weight_decay"_a, "nesterov"_a, "maximize"_a, "first_step"_a,
        "Fused SGD step over lists of arrays, in place (see fusedopt.functional.sgd).");
  m.def("adagrad", &adagrad, "params"_a, "grads"_a, "state_sums"_a, py::kw_only(), "step"_a, "lr"_a,
        "lr_decay"_a, "weight_decay"_a, "eps"_a, "maximize"_a,
        "Fused Adagrad step over lists of arrays, in place (see fusedopt.functional.adagrad).");
  m.def("rmsprop", &rmsprop, "params"_a, "grads"_a, "square_avgs"_a, "grad_avgs"_a, "momentum_buffers"_a,
        py::kw_only(), "lr"_a, "alpha"_a, "eps"_a, "weight_decay"_a, "momentum"_a, "centered"_a, "maximize"_a,
        "Fused RMSprop step over lists of arrays, in place (see fusedopt.functional.rmsprop).");
  m.def("adam", &adam, "params"_a, "grads"_a, "exp_avgs"_a, "exp_avg_sqs"_a, "max_exp_avg_sqs"_a,
        py::kw_only(), "step"_a, "lr"_a, "beta1"_a, "beta2"_a, "eps"_a, "weight_decay"_a, "amsgrad"_a,
        "maximize"_a, "decoupled_weight_decay"_a,
        "Fused Adam/AdamW step over lists of arrays, in place (see fusedopt.functional.adam).");
}

}  // namespace fusedopt
