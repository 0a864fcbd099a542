// Validation of the arrays a binding receives (DESIGN.md §5): every array of every list is checked
// before anything is written, the pointers are gathered into a TensorListView, and a reference to
// every array is held until the kernel has finished (no array can be freed under a GIL-free step).
#pragma once
#include <pybind11/pybind11.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "kernels.hpp"

namespace fusedopt {

// The name the user knows array i of a list by: "exp_avgs[3]", "state[3]['exp_avg']", ...
using Namer = std::function<std::string(size_t i)>;

// The checks of one array against the first param of its call (dtype) and its own param (shape).
// Returns its data pointer; throws TypeError/ValueError naming it.
void* check_array(pybind11::handle a, const Namer& name, size_t i, bool writable, pybind11::handle param,
                  const Namer& param_name, size_t param_i, pybind11::handle first_param,
                  const std::string& first_param_name);

// The checks of check_array but the shape: a numpy array of first_param's dtype, C-contiguous,
// aligned, and writable when asked. Returns its data pointer.
void* check_memory(pybind11::handle a, const Namer& name, size_t i, bool writable, pybind11::handle first_param,
                   const std::string& first_param_name);

// An array's shape, and a shape as Python prints a tuple: "(3, 1)", "(5,)".
std::vector<int64_t> shape_vector(pybind11::handle a);
std::string shape_text(const std::vector<int64_t>& shape);

// The storage type of an array: float32, float64, bfloat16 (ml_dtypes' dtype) or float16, native
// byte order; or TypeError naming it.
DType storage_dtype(pybind11::handle a, const std::string& name);

// The dtype of a call that computes in its arrays' own type, from its first param: float32 or float64.
DType call_dtype(pybind11::handle first_param, const std::string& name);

size_t itemsize_of(DType d);
const char* dtype_text(DType d);

// The storage of one call's lists, in list order (dtypes[k] of list k, named names[k][0] by its first
// array): float64 lists take float64 lists only; float32, bfloat16 and float16 lists mix, computing in
// float32. TypeError naming the first list that breaks it.
void refuse_mixing_float64(const std::vector<DType>& dtypes, const std::vector<std::string>& first_names);

std::string type_name(pybind11::handle h);

// A step's `rounding` argument: None (to nearest) or (seed, step), ints in [0, 2^64).
struct StochasticRounding {
  bool on = false;
  unsigned long long seed = 0, step = 0;
};
StochasticRounding stochastic_rounding(pybind11::handle rounding);

// The precision options against the lists' dtypes (lists 0..n_lists-1: params, grads, state; list
// n_lists: the master copies when has_master): a master copy is float32 and only for 16-bit params;
// stochastic rounding is for bfloat16, so no written list may be float16. first_name(k): list k's first array.
void refuse_bad_precision(const std::vector<DType>& dtypes, size_t n_lists, bool has_master, bool stochastic,
                          const std::function<std::string(size_t)>& first_name);

// Lists of arrays, one per slot in use: params first, grads second, then the state buffers.
class CheckedLists {
 public:
  struct Arg {
    const char* name;      // as the user knows it: "params", "grads", "exp_avgs", ...
    pybind11::handle obj;  // a list/tuple of numpy arrays
    bool writable;         // updated in place (everything but grads)
  };
  explicit CheckedLists(const std::vector<Arg>& lists);
  DType dtype() const { return dtype_; }  // the math type: float64, or float32 for every other storage
  DType list_dtype(size_t k) const { return dtypes_[k]; }
  const std::vector<DType>& dtypes() const { return dtypes_; }
  bool mixed() const { return mixed_; }  // some list is stored in a 16-bit type
  // TypeError unless every list is float32 or every list float64 (the probes' kernels).
  void require_one_type(const char* what) const;
  TensorListView view() const;
  // The 16-bit step's storage: each list's type; master, stochastic rounding and ids left to the caller.
  MixedStorage storage() const;
  void* const* pointers(size_t k) const { return pointers_[k].data(); }

 private:
  // ValueError when a written array shares memory with another array (overlap.hpp).
  void refuse_overlaps(const std::vector<Arg>& lists, size_t n) const;
  DType dtype_ = kFloat32;
  std::vector<DType> dtypes_;
  bool mixed_ = false;
  std::vector<int64_t> offsets_;
  std::vector<void*> pointers_[kMaxSlots];
  std::vector<pybind11::object> held_;
};

// Elements below which a kernel runs on the calling thread (no parallel job).
int64_t serial_threshold();
void set_serial_threshold(int64_t n);

// fusedopt's own thread count, the same for every calling thread: passed to each parallel job
// (thread_pool.cpp), so it neither reads nor changes the OpenMP ICV other libraries share.
int num_threads();
void set_num_threads(int n);

// A view's settings that are not the arrays: the serial threshold and the thread count.
void set_run_settings(TensorListView& view);

// An integer argument in [lo, hi], or TypeError/ValueError in the project's words ("n: expected an
// int in [1, 4096], got 5000").
long long checked_int(pybind11::handle value, const char* name, long long lo, long long hi);

}  // namespace fusedopt
