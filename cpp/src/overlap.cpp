#include "overlap.hpp"

#include <pybind11/pybind11.h>

#include <algorithm>

namespace fusedopt {
namespace {

bool grad_is_its_param(const Extent& a, const Extent& b) {
  const bool pair = a.call == b.call && a.index == b.index &&
                    ((a.slot == 0 && b.slot == 1) || (a.slot == 1 && b.slot == 0));
  return pair && a.begin == b.begin && a.end == b.end;
}

[[noreturn]] void overlapping(const Extent& a, const Extent& b, const ExtentNamer& name) {
  const bool a_first = a.call < b.call || (a.call == b.call && (a.slot < b.slot || (a.slot == b.slot && a.index < b.index)));
  const Extent& later = a_first ? b : a;
  const Extent& earlier = a_first ? a : b;
  throw pybind11::value_error(name(later) + ": shares memory with " + name(earlier) +
                              "; the arrays of one step must not overlap (only a grad may be its own param)");
}

}  // namespace

void Extents::add(const void* data, size_t bytes, int call, int slot, size_t index) {
  if (bytes == 0) return;  // an empty array owns no byte
  const auto begin = reinterpret_cast<uintptr_t>(data);
  extents_.push_back({begin, begin + bytes, call, slot, index});
  sorted_ = false;
}

void Extents::sort() {
  if (sorted_) return;
  std::sort(extents_.begin(), extents_.end(), [](const Extent& x, const Extent& y) {
    return x.begin != y.begin ? x.begin < y.begin : x.end < y.end;
  });
  sorted_ = true;
}

// A sweep in address order: the extent reaching furthest so far overlaps the next one if that starts
// before its end. Any overlapping pair is found this way or through another overlapping pair.
void Extents::refuse_overlaps(const ExtentNamer& name) {
  sort();
  const Extent* furthest = nullptr;
  for (const Extent& e : extents_) {
    if (furthest != nullptr && e.begin < furthest->end && !grad_is_its_param(*furthest, e))
      overlapping(*furthest, e, name);
    if (furthest == nullptr || e.end > furthest->end) furthest = &e;
  }
}

void Extents::refuse_overlaps_with(const Extents& others, const ExtentNamer& name) {
  refuse_overlaps(name);
  const std::vector<Extent>& fixed = others.extents_;  // disjoint, so sorted by end as well
  for (const Extent& e : extents_) {
    // the first fixed extent ending after e begins; disjoint ones after it start at or after its end
    auto it = std::upper_bound(fixed.begin(), fixed.end(), e.begin,
                               [](uintptr_t at, const Extent& f) { return at < f.end; });
    for (; it != fixed.end() && it->begin < e.end; ++it)
      if (!grad_is_its_param(*it, e)) overlapping(*it, e, name);
  }
}

}  // namespace fusedopt
