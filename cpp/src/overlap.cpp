#include "overlap.hpp"

#include <pybind11/pybind11.h>

#include <algorithm>

namespace fusedopt {
namespace {

bool by_address(const Extent& x, const Extent& y) { return x.begin != y.begin ? x.begin < y.begin : x.end < y.end; }

[[noreturn]] void named_overlap(const Extent& named, const Extent& other, const ExtentNamer& name) {
  throw pybind11::value_error(name(named) + ": shares memory with " + name(other) +
                              "; the arrays of one step must not overlap (only a grad may be its own param)");
}

// Names the later of the two in argument order first (params, grads, state; by index within a list).
[[noreturn]] void overlapping(const Extent& a, const Extent& b, const ExtentNamer& name) {
  const bool a_first = a.call < b.call || (a.call == b.call && (a.slot < b.slot || (a.slot == b.slot && a.index < b.index)));
  named_overlap(a_first ? b : a, a_first ? a : b, name);
}

}  // namespace

void WrittenExtents::add(const void* data, size_t bytes, int call, int slot, size_t index) {
  if (bytes == 0) return;
  const auto begin = reinterpret_cast<uintptr_t>(data);
  extents_.push_back({begin, begin + bytes, call, slot, index});
}

// A sweep in address order: the extent reaching furthest so far overlaps the next one if that starts
// before its end. Any overlapping pair is found this way or through another overlapping pair.
void WrittenExtents::sort_and_refuse_overlaps(const ExtentNamer& name) {
  std::sort(extents_.begin(), extents_.end(), by_address);
  const Extent* furthest = nullptr;
  for (const Extent& e : extents_) {
    if (furthest != nullptr && e.begin < furthest->end) overlapping(*furthest, e, name);
    if (furthest == nullptr || e.end > furthest->end) furthest = &e;
  }
}

void WrittenExtents::refuse_grads(std::vector<Extent>& grads, const ExtentNamer& name) const {
  grads.erase(std::remove_if(grads.begin(), grads.end(), [](const Extent& g) { return g.begin == g.end; }), grads.end());
  std::sort(grads.begin(), grads.end(), by_address);
  const Extent* furthest = nullptr;  // the sweep of sort_and_refuse_overlaps, over the grads
  for (const Extent& g : grads) {
    if (furthest != nullptr && g.begin < furthest->end) overlapping(*furthest, g, name);
    if (furthest == nullptr || g.end > furthest->end) furthest = &g;
  }
  for (const Extent& read : grads) {
    // disjoint and sorted, so sorted by end too: the first one ending after `read` begins is the only
    // candidate, and the one after it if that one is exactly this grad's own param
    auto it = std::upper_bound(extents_.begin(), extents_.end(), read.begin,
                               [](uintptr_t at, const Extent& e) { return at < e.end; });
    for (; it != extents_.end() && it->begin < read.end; ++it) {
      const bool own_param = it->slot == 0 && it->call == read.call && it->index == read.index &&
                             it->begin == read.begin && it->end == read.end;
      if (!own_param) named_overlap(read, *it, name);  // the grad first: it is what changed
    }
  }
}

}  // namespace fusedopt
