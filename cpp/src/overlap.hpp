// No two arrays of one step may share memory (DESIGN.md §1, "Safety"): the SIMD loops and the thread
// split assume every slot's elements are distinct. The one exception is a grad that is exactly its own
// param (same bytes): it is read before the param is written, element by element.
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

// Sorted by begin, empty arrays left out; then the first overlapping pair, if any, is an error.
class Extents {
 public:
  void add(const void* data, size_t bytes, int call, int slot, size_t index);
  // Throws ValueError naming the first two arrays that overlap (a grad identical to its param is fine).
  void refuse_overlaps(const ExtentNamer& name);
  // The same against `others` (already checked, non-overlapping and sorted): every extent here must
  // be disjoint from them and from each other. O((n + m) log m) with n here and m in others.
  void refuse_overlaps_with(const Extents& others, const ExtentNamer& name);
  void clear() { extents_.clear(); sorted_ = false; }

 private:
  void sort();
  std::vector<Extent> extents_;
  bool sorted_ = false;
};

}  // namespace fusedopt
