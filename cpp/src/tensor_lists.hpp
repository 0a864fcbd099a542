// Validation of the tensor lists a binding receives (DESIGN.md §5): every array of every list is
// checked before anything is written, and the pointers are gathered into a TensorListView.
#pragma once
#include <pybind11/pybind11.h>

#include <cstdint>
#include <vector>

#include "kernels.hpp"

namespace fusedopt {

struct ListArg {
  const char* name;     // as the user knows it: "params", "grads", "exp_avgs", ...
  pybind11::handle obj; // a list/tuple of numpy arrays, or None for a slot this call does not use
  bool writable;        // updated in place (everything but grads)
};

// The first list is the params; every other list must match it in length, dtype and shapes.
class CheckedLists {
 public:
  CheckedLists(const ListArg* first, const ListArg* last);
  CheckedLists(std::initializer_list<ListArg> lists) : CheckedLists(lists.begin(), lists.end()) {}
  DType dtype() const { return dtype_; }
  TensorListView view() const;

 private:
  DType dtype_ = kFloat32;
  std::vector<int64_t> offsets_;
  std::vector<void*> pointers_[kMaxSlots];
};

// Elements below which a kernel runs on the calling thread (no OpenMP region).
int64_t serial_threshold();
void set_serial_threshold(int64_t n);

}  // namespace fusedopt
