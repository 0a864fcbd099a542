// A prepared optimizer step (DESIGN.md §1, "Plans"): the params and state buffers of an optimizer,
// checked once and held (references, pointers, sizes, dtypes), cut into calls: one per (param group,
// dtype, step count) with the state buffers its variant uses. A step checks only what can have
// changed (the gradients; that params and state are still writable), for every call before the
// first writes, then runs each call's kernel without the GIL.
#pragma once
#include <pybind11/pybind11.h>

#include <mutex>
#include <string>
#include <vector>

#include "kernels.hpp"
#include "overlap.hpp"

namespace fusedopt {

class Plan {
 public:
  // calls: one tuple per call, (rule, params, buffers, param_indices, param_names, buffer_names[, master,
  // master_names]):
  //   rule: index in FUSEDOPT_OPTIMIZERS order; params: list of arrays; buffers: list of lists of
  //   arrays (the state slots the variants of this call use, in the rule's slot order);
  //   param_indices: each param's index in the optimizer (its gradient's index in a step);
  //   param_names / buffer_names: how the user knows each array, for the error messages;
  //   master: None, or float32 copies of the (16-bit) params, which the step reads and updates.
  // Each list has one dtype: float64 throughout, or float32, bfloat16 and float16 mixed (float32 math).
  Plan(pybind11::sequence calls, Py_ssize_t n_params);

  // Checks grads (one per param, in optimizer order) and every call's variant (flags) and scalars
  // (bytes: the rule's scalar fields as doubles, in the order of fusedopt._core.rules()), then runs
  // every call. Returns false, having written nothing, when the gradient of a param in a call is None
  // (the grads of params in no call are not read).
  // rounding: None, or one (seed, step) per call to round its bfloat16 writes stochastically.
  bool step(pybind11::object grads, pybind11::sequence variants, pybind11::sequence scalars,
            pybind11::handle rounding) const;

  // Runs every call on grads already checked by the caller (grad_pointers[c][i]: the gradient of
  // param i of call c, of its param's dtype and size, aligned; held keeps them alive): checks the
  // rest (params and state still writable, variants, scalars, no grad sharing written memory), then
  // runs the kernels without the GIL.
  void run(const std::vector<std::vector<void*>>& grad_pointers, pybind11::sequence variants,
           pybind11::sequence scalars, pybind11::handle rounding) const;

  Py_ssize_t n_calls() const { return static_cast<Py_ssize_t>(calls_.size()); }
  // Param i of call c: its element count and its array (as given at construction).
  int64_t numel(size_t c, size_t i) const { return calls_[c].offsets[i + 1] - calls_[c].offsets[i]; }
  size_t n_params_in(size_t c) const { return calls_[c].params.size(); }
  DType dtype(size_t c) const { return calls_[c].dtypes[0]; }  // the params' storage

 private:
  struct Call {
    int rule = 0;
    DType dtype = kFloat32;            // the math type
    std::vector<DType> dtypes;         // per list: params, grads (the params'), buffers
    bool mixed = false;                // some list is 16-bit
    int n_buffers = 0;
    std::vector<int64_t> offsets;
    std::vector<Py_ssize_t> param_index;
    std::vector<void*> pointers[kMaxSlots];  // slot 1 (grads) is filled at each step
    std::vector<pybind11::object> params;
    std::vector<std::vector<pybind11::object>> buffers;
    std::vector<std::string> param_names;
    std::vector<std::vector<std::string>> buffer_names;
    std::vector<void*> master;         // empty: no master copies
    std::vector<pybind11::object> master_arrays;
    std::vector<std::string> master_names;
    std::vector<int64_t> ids;          // param_index: the key of each param's rounding bits
    size_t itemsize = 4;               // the params' and grads'
    size_t n_lists() const { return static_cast<size_t>(n_buffers) + 2; }
  };
  static constexpr int kMasterSlot = kMaxSlots - 1;  // the master copies' slot in extents
  std::string name_of(const Extent& e) const;
  void refuse_grads_sharing_written_memory(const std::vector<std::vector<void*>>& grad_pointers) const;
  std::vector<Call> calls_;
  WrittenExtents fixed_;  // params and state buffers of every call: checked disjoint once, sorted
  mutable std::mutex checked_grads_mutex_;
  mutable RecentlyChecked<std::vector<void*>> checked_grads_;  // grad pointers found clear of fixed_
  Py_ssize_t n_params_;
};

void register_plan(pybind11::module_& m);

}  // namespace fusedopt
