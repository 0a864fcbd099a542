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

// The dtype of a call, from its first param (float32 or float64, native byte order), or TypeError.
DType call_dtype(pybind11::handle first_param, const std::string& name);

std::string type_name(pybind11::handle h);

// Lists of arrays, one per slot in use: params first, grads second, then the state buffers.
class CheckedLists {
 public:
  struct Arg {
    const char* name;      // as the user knows it: "params", "grads", "exp_avgs", ...
    pybind11::handle obj;  // a list/tuple of numpy arrays
    bool writable;         // updated in place (everything but grads)
  };
  explicit CheckedLists(const std::vector<Arg>& lists);
  DType dtype() const { return dtype_; }
  TensorListView view() const;

 private:
  // ValueError when a written array shares memory with another array (overlap.hpp).
  void refuse_overlaps(const std::vector<Arg>& lists, size_t n) const;
  DType dtype_ = kFloat32;
  std::vector<int64_t> offsets_;
  std::vector<void*> pointers_[kMaxSlots];
  std::vector<pybind11::object> held_;
};

// Elements below which a kernel runs on the calling thread (no OpenMP region).
int64_t serial_threshold();
void set_serial_threshold(int64_t n);

// fusedopt's own thread count, the same for every calling thread: passed to each parallel region as
// its num_threads clause, so it neither reads nor changes the OpenMP ICV other libraries share.
int num_threads();
void set_num_threads(int n);

// A view's settings that are not the arrays: the serial threshold and the thread count.
void set_run_settings(TensorListView& view);

// An integer argument in [lo, hi], or TypeError/ValueError in the project's words ("n: expected an
// int in [1, 4096], got 5000").
long long checked_int(pybind11::handle value, const char* name, long long lo, long long hi);

}  // namespace fusedopt
