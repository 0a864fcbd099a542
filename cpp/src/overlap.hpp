// No two arrays of one step may share memory (DESIGN.md §1, "Safety"): the SIMD loops and the thread
// split assume that what one element writes no other element reads or writes. The one exception is a
// grad that is exactly its own param (same bytes): it is read before the param is written, element by
// element.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace fusedopt {

// The bytes [begin, end) of one array, and where it sits in a step: call c (a plan's calls; 0 for a
// functional step), slot (0 params, 1 grads, 2.. state) and index i in that slot's list.
struct Extent {
  uintptr_t begin;
  uintptr_t end;
  int call;
  int slot;
  size_t index;
};

using ExtentNamer = std::function<std::string(const Extent&)>;

// The arrays a step writes (params and state), sorted by address and checked disjoint once (a plan's
// or a repeated call's are the same from step to step); then the grads, which change every step, are
// checked among themselves (sorted) and each against them by binary search: O(n log n) per step.
class WrittenExtents {
 public:
  void clear() { extents_.clear(); }
  void reserve(size_t n) { extents_.reserve(n); }
  void add(const void* data, size_t bytes, int call, int slot, size_t index);  // empty arrays own no byte
  // Sorts, then throws ValueError naming the first two that overlap.
  void sort_and_refuse_overlaps(const ExtentNamer& name);
  // Throws ValueError when two grads overlap, or a grad overlaps a written array other than exactly
  // its own param. `grads` holds slot-1 extents (reordered here). Needs sort_and_refuse_overlaps first.
  void refuse_grads(std::vector<Extent>& grads, const ExtentNamer& name) const;
  size_t size() const { return extents_.size(); }

 private:
  std::vector<Extent> extents_;
};

// The last two sets of grad memory found clear: a loop that makes its next grads before it drops the
// last ones alternates between two sets of addresses, and then no step sorts anything.
template <typename Key>
class RecentlyChecked {
 public:
  bool contains(const Key& key) const { return (valid_[0] && key == recent_[0]) || (valid_[1] && key == recent_[1]); }
  void insert(const Key& key) {
    if (valid_[0] && key == recent_[0]) return;
    recent_[1].swap(recent_[0]);
    valid_[1] = valid_[0];
    recent_[0] = key;
    valid_[0] = true;
  }
  void clear() { valid_[0] = valid_[1] = false; }

 private:
  Key recent_[2];
  bool valid_[2] = {false, false};
};

}  // namespace fusedopt
