// cooperative_groups.h of the host emulation (host_emulation.hpp): the grid group, whose sync() waits
// for every thread of a cooperative launch.
#pragma once
#include "host_emulation.hpp"

namespace cooperative_groups {
struct grid_group {
  void sync() const { host_emulation::grid_sync(); }
};
inline grid_group this_grid() { return {}; }
}  // namespace cooperative_groups
