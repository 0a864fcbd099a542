// The CPU driver of Adafactor (rules/adafactor.hpp): its state is not shaped like its params (a row
// and a column factor per matrix), so it has its own walker instead of the elementwise one.
//
// Every tensor is cut into tiles fixed by its shape alone (never by the thread count): a factored
// tensor (the matrices of its last two dims, rows × cols) into tiles of up to 1024 columns and about
// 65536 elements, a vector into tiles of 16384 elements. Each tile writes its own partial sums (16
// lanes in double, element j of a row segment in lane j % 16), and the partials are added in tile
// order, so the result is the same for any thread count and ISA. The passes over memory:
//   factored  1: read p, g: ‖p‖², row and column sums of g²   (then R, C and mean R: O(rows + cols))
//             2: read g: ‖U‖²                                  (U needs every row and column mean)
//             3: read p, g, write p                            → 24 bytes per float32 param
//   vector    1: read p, g, V̂, write V̂: ‖p‖², ‖U‖²
//             2: read p, g, V̂, write p                         → 32 bytes per float32 param
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

#include "../rules/adafactor.hpp"
#include "tensor_list.hpp"

namespace fusedopt {

// One param and its state (plain data: crosses from the binding into each ISA build). A factored
// param has row_var and col_var and no variance; a vector (≤ 1-D) the reverse, with batches = rows = 1
// and cols = its size.
struct AdafactorTensor {
  const double* scalars;  // rules::AdafactorScalars' fields (kAdafactorScalars doubles)
  void* param;
  const void* grad;
  void* row_var;   // batches × rows
  void* col_var;   // batches × cols
  void* variance;  // as the param
  int64_t batches, rows, cols;
};

struct AdafactorView {
  int64_t n_tensors;
  const AdafactorTensor* tensors;
  int64_t serial_below;  // fewer elements than this in all: no OpenMP region
  int num_threads;
};

constexpr int kAdafactorScalars = 9;  // rules::AdafactorScalars' fields, passed as doubles

}  // namespace fusedopt

FUSEDOPT_NAMESPACE_BEGIN
namespace cpu {
namespace adafactor_detail {

constexpr int64_t kTileCols = 1024;        // columns of a factored tile
constexpr int64_t kTileElements = 65536;   // elements of a factored tile, about (its column partials: 1/64 of it)
constexpr int64_t kVectorTile = 16384;     // elements of a vector tile
constexpr int kLanes = 16;

struct Tile {
  int64_t tensor, batch, row0, rows, col0, cols, row_block, col_block;
};

// Where each tensor's partial sums live, and its tiles.
struct Tiling {
  std::vector<Tile> tiles;
  std::vector<int64_t> first_tile, row_part, col_part, row_blocks, col_blocks;  // per tensor
  // Elements before each tile, of all tiles and of the factored ones only: the threads' shares (pass 2
  // runs over the factored tiles alone).
  std::vector<int64_t> before_all{0}, before_factored{0};
  int64_t row_part_size = 0, col_part_size = 0;

  explicit Tiling(const AdafactorView& view) {
    const auto n = static_cast<size_t>(view.n_tensors);
    first_tile.resize(n + 1);
    row_part.resize(n);
    col_part.resize(n);
    row_blocks.resize(n);
    col_blocks.resize(n);
    for (size_t t = 0; t < n; ++t) {
      const AdafactorTensor& x = view.tensors[t];
      first_tile[t] = static_cast<int64_t>(tiles.size());
      const bool factored = x.row_var != nullptr;
      const int64_t tile_cols = factored ? (x.cols < kTileCols ? x.cols : kTileCols) : kVectorTile;
      const int64_t tile_rows = factored && tile_cols > 0 ? (kTileElements / tile_cols > 1 ? kTileElements / tile_cols : 1) : 1;
      row_blocks[t] = tile_rows > 0 ? (x.rows + tile_rows - 1) / tile_rows : 0;
      col_blocks[t] = tile_cols > 0 ? (x.cols + tile_cols - 1) / tile_cols : 0;
      row_part[t] = row_part_size;
      col_part[t] = col_part_size;
      if (x.batches * x.rows * x.cols == 0) continue;  // nothing to update
      if (factored) {
        row_part_size += x.batches * col_blocks[t] * x.rows;
        col_part_size += x.batches * row_blocks[t] * x.cols;
      }
      for (int64_t b = 0; b < x.batches; ++b)
        for (int64_t rb = 0; rb < row_blocks[t]; ++rb)
          for (int64_t cb = 0; cb < col_blocks[t]; ++cb) {
            const int64_t row0 = rb * tile_rows, col0 = cb * tile_cols;
            tiles.push_back({static_cast<int64_t>(t), b, row0, x.rows - row0 < tile_rows ? x.rows - row0 : tile_rows,
                             col0, x.cols - col0 < tile_cols ? x.cols - col0 : tile_cols, rb, cb});
            const int64_t size = tiles.back().rows * tiles.back().cols;
            before_all.push_back(before_all.back() + size);
            before_factored.push_back(before_factored.back() + (factored ? size : 0));
          }
    }
    first_tile[n] = static_cast<int64_t>(tiles.size());
  }
};

template <typename T>
inline rules::AdafactorScalars<T> scalars_of(const AdafactorTensor& x) {
  rules::AdafactorScalars<T> s;
  T* fields = &s.grad_sign;
  for (int k = 0; k < kAdafactorScalars; ++k) fields[k] = static_cast<T>(x.scalars[k]);
  return s;
}

// A buffer of at least n doubles, kept by the calling thread from step to step: a fresh allocation of
// the column partials (megabytes) would cost page faults at every step. Not zeroed: every entry
// read is written first.
inline double* scratch(std::vector<double>& buffer, size_t n) {
  if (buffer.size() < n) buffer.resize(n);
  return buffer.data();
}

inline double lane_total(const double* lanes) {
  double sum = 0.0;
  for (int l = 0; l < kLanes; ++l) sum += lanes[l];
  return sum;
}

// body(i) for j in [0, n): 16 at a time in a SIMD loop (lane l gets j with j % 16 == l), then the tail
// in the same lanes.
template <typename F>
inline void in_lanes(int64_t n, F&& body) {
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes) {
#pragma omp simd
    for (int l = 0; l < kLanes; ++l) body(j + l, l);
  }
  for (int l = 0; j < n; ++j, ++l) body(j, l);
}

// body(k, tile) for every tile, over the threads: each takes the tiles that start in its equal share of
// the elements counted by `before` (a prefix sum per tile), so that tiles of different sizes balance.
// Which thread runs a tile never changes its result.
template <typename Body>
inline void for_each_tile(const AdafactorView& view, const Tiling& tiling, const std::vector<int64_t>& before,
                          Body&& body) {
  const auto n = static_cast<int64_t>(tiling.tiles.size());
  const int64_t total = before.back();
  if (total < view.serial_below || view.num_threads <= 1) {
    for (int64_t k = 0; k < n; ++k) body(k, tiling.tiles[static_cast<size_t>(k)]);
    return;
  }
#pragma omp parallel num_threads(view.num_threads)
  {
    const int64_t threads = omp_get_num_threads(), me = omp_get_thread_num();
    const auto share_start = [&](int64_t thread) {  // the first tile starting at or after the thread's share
      const int64_t element = total / threads * thread + std::min(thread, total % threads);
      return std::lower_bound(before.begin(), before.end() - 1, element) - before.begin();
    };
    const int64_t last = me + 1 == threads ? n : share_start(me + 1);
    for (int64_t k = share_start(me); k < last; ++k) body(k, tiling.tiles[static_cast<size_t>(k)]);
  }
}

}  // namespace adafactor_detail

// One Adafactor step over every tensor of the view, each with its own scalars.
template <typename T>
void adafactor(const AdafactorView& view) {
  using namespace adafactor_detail;
  using Rule = rules::Adafactor;
  const Tiling tiling(view);
  thread_local std::vector<double> sums_buffer, row_buffer, col_buffer, col_sum_buffer;
  double* const sums = scratch(sums_buffer, tiling.tiles.size() * 2);  // per tile: ‖p‖², ‖U‖² partials
  double* const row_part = scratch(row_buffer, static_cast<size_t>(tiling.row_part_size));
  double* const col_part = scratch(col_buffer, static_cast<size_t>(tiling.col_part_size));
  const auto at = [](const void* base, int64_t offset) { return static_cast<T*>(const_cast<void*>(base)) + offset; };

  // Pass 1.
  for_each_tile(view, tiling, tiling.before_all, [&](int64_t k, const Tile& tile) {
    const AdafactorTensor& x = view.tensors[tile.tensor];
    const auto s = scalars_of<T>(x);
    double p_lanes[kLanes] = {}, u_lanes[kLanes] = {};
    if (x.row_var != nullptr) {
      double* cols = &col_part[static_cast<size_t>(tiling.col_part[tile.tensor] +
                                                   (tile.batch * tiling.row_blocks[tile.tensor] + tile.row_block) * x.cols +
                                                   tile.col0)];
      for (int64_t j = 0; j < tile.cols; ++j) cols[j] = 0.0;
      for (int64_t i = tile.row0; i < tile.row0 + tile.rows; ++i) {
        const int64_t first = (tile.batch * x.rows + i) * x.cols + tile.col0;
        const T* p = at(x.param, first);
        const T* g = at(x.grad, first);
        double row_lanes[kLanes] = {};
        in_lanes(tile.cols, [&](int64_t j, int l) __attribute__((always_inline)) {
          const T g2 = Rule::square(g[j], s);
          row_lanes[l] += static_cast<double>(g2);
          p_lanes[l] += static_cast<double>(p[j] * p[j]);
          cols[j] += static_cast<double>(g2);
        });
        row_part[static_cast<size_t>(tiling.row_part[tile.tensor] +
                                     (tile.batch * tiling.col_blocks[tile.tensor] + tile.col_block) * x.rows + i)] =
            lane_total(row_lanes);
      }
    } else {
      T* p = at(x.param, tile.col0);
      const T* g = at(x.grad, tile.col0);
      T* v = at(x.variance, tile.col0);
      in_lanes(tile.cols, [&](int64_t j, int l) __attribute__((always_inline)) {
        v[j] = Rule::second_moment(v[j], Rule::square(g[j], s), s);
        const T u = Rule::update(g[j], v[j], s);
        p_lanes[l] += static_cast<double>(p[j] * p[j]);
        u_lanes[l] += static_cast<double>(u * u);
      });
      sums[k * 2 + 1] = lane_total(u_lanes);
    }
    sums[k * 2] = lane_total(p_lanes);
  });

  // The factors R and C, the floored mean of R per matrix, and from them the scales of 1/√V̂ per row
  // and per column (O(rows + cols), in order).
  const auto n = static_cast<size_t>(view.n_tensors);
  std::vector<size_t> scale_at(n + 1, 0);  // per tensor: batches × rows row scales, then batches × cols column scales
  for (size_t t = 0; t < n; ++t) {
    const AdafactorTensor& x = view.tensors[t];
    scale_at[t + 1] = scale_at[t] + (x.row_var != nullptr ? size_t(x.batches * (x.rows + x.cols)) : 0);
  }
  std::vector<T> scales(scale_at[n]);
  for (size_t t = 0; t < n; ++t) {
    const AdafactorTensor& x = view.tensors[t];
    if (x.row_var == nullptr || x.batches * x.rows * x.cols == 0) continue;
    const auto s = scalars_of<T>(x);
    for (int64_t b = 0; b < x.batches; ++b) {
      T* r = at(x.row_var, b * x.rows);
      T* c = at(x.col_var, b * x.cols);
      double r_total = 0.0;
      for (int64_t i = 0; i < x.rows; ++i) {
        double sum = 0.0;
        for (int64_t cb = 0; cb < tiling.col_blocks[t]; ++cb)
          sum += row_part[static_cast<size_t>(tiling.row_part[t] + (b * tiling.col_blocks[t] + cb) * x.rows + i)];
        r[i] = Rule::second_moment(r[i], static_cast<T>(sum / static_cast<double>(x.cols)), s);
        r_total += static_cast<double>(r[i]);
      }
      T* col_scales = &scales[scale_at[t] + size_t(x.batches * x.rows + b * x.cols)];
      double* col_sum = scratch(col_sum_buffer, static_cast<size_t>(x.cols));  // row blocks added in order
      const double* part = &col_part[static_cast<size_t>(tiling.col_part[t] + b * tiling.row_blocks[t] * x.cols)];
      for (int64_t j = 0; j < x.cols; ++j) col_sum[j] = 0.0;
      for (int64_t rb = 0; rb < tiling.row_blocks[t]; ++rb)
        for (int64_t j = 0; j < x.cols; ++j) col_sum[j] += part[rb * x.cols + j];
      for (int64_t j = 0; j < x.cols; ++j) {
        c[j] = Rule::second_moment(c[j], static_cast<T>(col_sum[j] / static_cast<double>(x.rows)), s);
        col_scales[j] = Rule::inverse_root(c[j]);
      }
      const T mean = static_cast<T>(r_total / static_cast<double>(x.rows));
      const T floor = mean < s.eps1 ? s.eps1 : mean;  // clamp_(min=eps1): a NaN stays
      T* row_scales = &scales[scale_at[t] + size_t(b * x.rows)];
      for (int64_t i = 0; i < x.rows; ++i) row_scales[i] = Rule::row_scale(r[i], floor);
    }
  }

  // Pass 2, factored tensors: ‖U‖².
  const auto factored_update = [&](const AdafactorTensor& x, const rules::AdafactorScalars<T>& s, size_t t,
                                   int64_t b, int64_t i, const T* g, int64_t col0) {
    const T row = scales[scale_at[t] + size_t(b * x.rows + i)];
    const T* col = &scales[scale_at[t] + size_t(x.batches * x.rows + b * x.cols + col0)];
    return [=, &s](int64_t j) __attribute__((always_inline)) { return Rule::factored_update(g[j], row, col[j], s); };
  };
  for_each_tile(view, tiling, tiling.before_factored, [&](int64_t k, const Tile& tile) {
    const AdafactorTensor& x = view.tensors[tile.tensor];
    if (x.row_var == nullptr) return;
    const auto s = scalars_of<T>(x);
    double u_lanes[kLanes] = {};
    for (int64_t i = tile.row0; i < tile.row0 + tile.rows; ++i) {
      const T* g = at(x.grad, (tile.batch * x.rows + i) * x.cols + tile.col0);
      const auto u_at = factored_update(x, s, static_cast<size_t>(tile.tensor), tile.batch, i, g, tile.col0);
      in_lanes(tile.cols, [&](int64_t j, int l) __attribute__((always_inline)) {
        const T u = u_at(j);
        u_lanes[l] += static_cast<double>(u * u);
      });
    }
    sums[k * 2 + 1] = lane_total(u_lanes);
  });

  // The step size of each tensor, from its tiles' partials in order.
  std::vector<T> step(n, T(0));
  for (size_t t = 0; t < n; ++t) {
    const AdafactorTensor& x = view.tensors[t];
    double p_square = 0.0, u_square = 0.0;
    for (int64_t k = tiling.first_tile[t]; k < tiling.first_tile[t + 1]; ++k) {
      p_square += sums[k * 2];
      u_square += sums[k * 2 + 1];
    }
    const double numel = static_cast<double>(x.batches * x.rows * x.cols);
    step[t] = static_cast<T>(Rule::step_size(square_root(p_square), square_root(u_square), numel,
                                             scalars_of<double>(x)));
  }

  // Last pass: the params.
  for_each_tile(view, tiling, tiling.before_all, [&](int64_t, const Tile& tile) {
    const AdafactorTensor& x = view.tensors[tile.tensor];
    const T size = step[static_cast<size_t>(tile.tensor)];
    const auto s = scalars_of<T>(x);
    if (x.row_var != nullptr) {
      for (int64_t i = tile.row0; i < tile.row0 + tile.rows; ++i) {
        const int64_t first = (tile.batch * x.rows + i) * x.cols + tile.col0;
        T* p = at(x.param, first);
        const T* g = at(x.grad, first);
        const auto u_at = factored_update(x, s, static_cast<size_t>(tile.tensor), tile.batch, i, g, tile.col0);
        simd_for(0, tile.cols, [&](int64_t j) __attribute__((always_inline)) { p[j] = Rule::write(p[j], u_at(j), size, s); });
      }
    } else {
      T* p = at(x.param, tile.col0);
      const T* g = at(x.grad, tile.col0);
      const T* v = at(x.variance, tile.col0);
      simd_for(0, tile.cols, [&](int64_t j) __attribute__((always_inline)) {
        p[j] = Rule::write(p[j], Rule::update(g[j], v[j], s), size, s);
      });
    }
  });
}

}  // namespace cpu
FUSEDOPT_NAMESPACE_END
