// The CPU driver of Adafactor (rules/adafactor.hpp): its state is not shaped like its params (a row
// and a column factor per matrix), so it has its own walker instead of the elementwise one.
//
// Every tensor is cut into tiles fixed by its shape alone (never by the thread count): a factored
// tensor (the matrices of its last two dims, rows × cols) into tiles of up to 1024 columns and about
// 65536 elements, a vector into tiles of 16384 elements. Each tile writes its own partial sums (16
// lanes in double, element j of a row segment in lane j % 16), and the partials are added in tile
// order, so the result is the same for any thread count and ISA. A pass walks a factored tensor by
// bands, not tile by tile: the tiles of one row block side by side (up to kBandTiles of them), row by
// row, each tile into its own partial sums in its own order. A tile's row segment is only 4 KiB: read
// down a tile, one short run after another, a 2000 x 5000 array came at about 20 GB/s on the 2-core
// development VM, and at 50 GB/s and more along whole rows. The passes over memory:
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
#include "../rules/storage.hpp"
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
  int64_t serial_below;  // fewer elements than this in all: no parallel job
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
constexpr int64_t kBandTiles = 16;         // tiles of a band: their column partials (128 KiB at most) stay in L2

struct Tile {
  int64_t tensor, batch, row0, rows, col0, cols, row_block, col_block;
};

// Tiles first .. first + count − 1: the consecutive column blocks of one row block of a factored
// tensor, or one vector tile (count 1).
struct Band {
  int64_t first, count;
};

// Where each tensor's partial sums live, and its tiles.
struct Tiling {
  std::vector<Tile> tiles;
  std::vector<Band> bands;
  std::vector<int64_t> first_tile, first_band, row_part, col_part, row_blocks, col_blocks;  // per tensor
  int64_t row_part_size = 0, col_part_size = 0;

  explicit Tiling(const AdafactorView& view) {
    const auto n = static_cast<size_t>(view.n_tensors);
    first_tile.resize(n + 1);
    first_band.resize(n + 1);
    row_part.resize(n);
    col_part.resize(n);
    row_blocks.resize(n);
    col_blocks.resize(n);
    for (size_t t = 0; t < n; ++t) {
      const AdafactorTensor& x = view.tensors[t];
      first_tile[t] = static_cast<int64_t>(tiles.size());
      first_band[t] = static_cast<int64_t>(bands.size());
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
            if (!factored || cb % kBandTiles == 0) bands.push_back({static_cast<int64_t>(tiles.size()), 0});
            ++bands.back().count;
            tiles.push_back({static_cast<int64_t>(t), b, row0, x.rows - row0 < tile_rows ? x.rows - row0 : tile_rows,
                             col0, x.cols - col0 < tile_cols ? x.cols - col0 : tile_cols, rb, cb});
          }
    }
    first_tile[n] = static_cast<int64_t>(tiles.size());
    first_band[n] = static_cast<int64_t>(bands.size());
  }
};

// How Adafactor's arrays are stored: every array of a call in the params' type, its math in Math
// (float32 for the 16-bit types, as torch computes a bfloat16 Adafactor per op in float32 and stores
// bfloat16). A 16-bit write rounds to nearest even; what a later pass or step reads is the stored value.
template <typename T>
struct Stored {  // float32, float64: in place
  using Math = T;
  using Element = T;
  FUSEDOPT_HD static T load(const T* p, int64_t j) { return p[j]; }
  FUSEDOPT_HD static void store(T* p, int64_t j, T value) { p[j] = value; }
};
// bfloat16 (BFloat16) or float16 bits, rounded to nearest even.
template <bool BFloat16>
struct Stored16 {
  using Math = float;
  using Element = unsigned short;
  FUSEDOPT_HD static float load(const unsigned short* p, int64_t j) {
    return BFloat16 ? rules::bfloat16_to_float(p[j]) : rules::float16_to_float(p[j]);
  }
  FUSEDOPT_HD static void store(unsigned short* p, int64_t j, float value) {
    p[j] = BFloat16 ? rules::to_bfloat16_bits(value) : rules::to_float16_bits(value);
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

// A tile's 16 lane sums, copied into a local for the length of one row segment: summed into the tile's
// array through a pointer, the compiler kept them in memory, a load and a store per vector of elements on
// the loop's critical path.
struct Lanes {
  double sum[kLanes];
  explicit Lanes(const double* from) {
    for (int l = 0; l < kLanes; ++l) sum[l] = from[l];
  }
  void store(double* to) const {
    for (int l = 0; l < kLanes; ++l) to[l] = sum[l];
  }
};

inline double lane_total(const double* lanes) {
  double sum = 0.0;
  for (int l = 0; l < kLanes; ++l) sum += lanes[l];
  return sum;
}

// body(j, l) for j in [0, n): 16 at a time in a SIMD loop (lane l gets j with j % 16 == l), then the tail
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

// body(u) for units u = 0 .. before.size() − 2 over the threads: the elements counted by `before`
// (elements before each unit) cut into equal shares, a share's units (those that start in it) claimed
// together, so that units of different sizes balance. Which thread runs a unit never changes its result.
template <typename Body>
inline void parallel_over(const AdafactorView& view, const std::vector<int64_t>& before, Body&& body) {
  const auto n = static_cast<int64_t>(before.size()) - 1;
  const int64_t total = before.back();
  if (total < view.serial_below || view.num_threads <= 1) {
    for (int64_t u = 0; u < n; ++u) body(u);
    return;
  }
  const int64_t claims = std::min<int64_t>(n, view.num_threads * kChunksPerThread);
  const auto share_start = [&](int64_t k) {  // the first unit starting at or after share k
    const int64_t element = total / claims * k + std::min(k, total % claims);
    return std::lower_bound(before.begin(), before.end() - 1, element) - before.begin();
  };
  parallel_for(claims, view.num_threads, [&](int64_t k) {
    const int64_t last = k + 1 == claims ? n : share_start(k + 1);
    for (int64_t u = share_start(k); u < last; ++u) body(u);
  });
}

// One Adafactor step over the tensors of a view: the passes over one band and the work between them
// over one tensor. A tensor small enough to stay in a core's caches between its passes is done whole
// by one thread (its three passes back to back, the later ones from cache); a larger one pass by pass,
// its bands over all threads. Either way every tile and tensor computes the same numbers.
template <typename Storage>
class AdafactorStep {
 public:
  using Rule = rules::Adafactor;
  using T = typename Storage::Math;
  using E = typename Storage::Element;
  static constexpr int64_t kInCacheBytes = int64_t(1) << 22;  // p and g of a tensor done whole: 4 MiB at most

  explicit AdafactorStep(const AdafactorView& view) : view_(view), tiling_(view) {
    thread_local std::vector<double> sums_buffer, row_buffer, col_buffer;
    sums_ = scratch(sums_buffer, tiling_.tiles.size() * 2);
    row_part_ = scratch(row_buffer, static_cast<size_t>(tiling_.row_part_size));
    col_part_ = scratch(col_buffer, static_cast<size_t>(tiling_.col_part_size));
    const auto n = static_cast<size_t>(view.n_tensors);
    scale_at_.assign(n + 1, 0);
    for (size_t t = 0; t < n; ++t) {
      const AdafactorTensor& x = view.tensors[t];
      scale_at_[t + 1] = scale_at_[t] + (x.row_var != nullptr ? size_t(x.batches * (x.rows + x.cols)) : 0);
    }
    scales_.resize(scale_at_[n]);
    step_.assign(n, T(0));
  }

  void run() {
    const auto n = static_cast<int64_t>(view_.n_tensors);
    const auto& bands = tiling_.bands;
    std::vector<char> whole(static_cast<size_t>(n));
    // First the tensors done whole and the first pass of the others' bands, in one parallel job.
    std::vector<int64_t> units, before{0};
    for (int64_t t = 0; t < n; ++t) {
      const int64_t elements = numel(t);
      whole[t] = elements * int64_t(sizeof(E)) * 2 <= kInCacheBytes;
      if (whole[t] && elements > 0) units.push_back(-1 - t), before.push_back(before.back() + elements);
    }
    for (int64_t k = 0; k < static_cast<int64_t>(bands.size()); ++k)
      if (!whole[head(bands[k]).tensor]) units.push_back(k), before.push_back(before.back() + size(bands[k]));
    parallel_over(view_, before, [&](int64_t u) {
      if (units[u] < 0) {
        whole_tensor(-1 - units[u]);
      } else {
        first_pass(bands[units[u]]);
      }
    });
    for (int64_t t = 0; t < n; ++t)
      if (!whole[t]) factors(t);
    run_bands(whole, true, [&](const Band& band) { norm_pass(band); });
    for (int64_t t = 0; t < n; ++t)
      if (!whole[t]) step_size(t);
    run_bands(whole, false, [&](const Band& band) { write_pass(band); });
  }

 private:
  int64_t numel(int64_t t) const {
    const AdafactorTensor& x = view_.tensors[t];
    return x.batches * x.rows * x.cols;
  }
  const Tile& head(const Band& band) const { return tiling_.tiles[band.first]; }
  int64_t size(const Band& band) const {
    int64_t elements = 0;
    for (int64_t k = band.first; k < band.first + band.count; ++k) elements += tiling_.tiles[k].rows * tiling_.tiles[k].cols;
    return elements;
  }
  E* at(const void* base, int64_t offset) const { return static_cast<E*>(const_cast<void*>(base)) + offset; }
  FUSEDOPT_HD static T load(const E* p, int64_t j) { return Storage::load(p, j); }
  FUSEDOPT_HD static void store(E* p, int64_t j, T value) { Storage::store(p, j, value); }

  void whole_tensor(int64_t t) {
    const auto bands = [&](auto&& pass) {
      for (int64_t k = tiling_.first_band[t]; k < tiling_.first_band[t + 1]; ++k) pass(tiling_.bands[k]);
    };
    bands([&](const Band& band) { first_pass(band); });
    factors(t);
    bands([&](const Band& band) { norm_pass(band); });
    step_size(t);
    bands([&](const Band& band) { write_pass(band); });
  }

  // The bands of the tensors not done whole (only the factored ones for the norm pass), over the threads.
  template <typename Body>
  void run_bands(const std::vector<char>& whole, bool factored_only, Body&& body) {
    const auto& bands = tiling_.bands;
    std::vector<int64_t> units, before{0};
    for (int64_t k = 0; k < static_cast<int64_t>(bands.size()); ++k) {
      const int64_t t = head(bands[k]).tensor;
      if (!whole[t] && (!factored_only || view_.tensors[t].row_var != nullptr))
        units.push_back(k), before.push_back(before.back() + size(bands[k]));
    }
    parallel_over(view_, before, [&](int64_t u) { body(bands[units[u]]); });
  }

  // Each row i of a factored band, the band's tiles in column order: visit(c, tile, i, offset of the row
  // segment's first element).
  template <typename Visit>
  void along_rows(const Band& band, Visit&& visit) const {
    const Tile& first = head(band);
    const AdafactorTensor& x = view_.tensors[first.tensor];
    for (int64_t i = first.row0; i < first.row0 + first.rows; ++i)
      for (int64_t c = 0; c < band.count; ++c) {
        const Tile& tile = tiling_.tiles[band.first + c];
        visit(c, tile, i, (tile.batch * x.rows + i) * x.cols + tile.col0);
      }
  }

  // Pass 1 of a band: per tile ‖p‖² (and for a vector V̂ and ‖U‖²), or the row and column sums of g².
  void first_pass(const Band& band) {
    const Tile& first = head(band);
    const AdafactorTensor& x = view_.tensors[first.tensor];
    const auto s = scalars_of<T>(x);
    if (x.row_var != nullptr) {
      double p_lanes[kBandTiles][kLanes] = {};
      double* cols[kBandTiles];
      for (int64_t c = 0; c < band.count; ++c) {
        const Tile& tile = tiling_.tiles[band.first + c];
        cols[c] = &col_part_[tiling_.col_part[tile.tensor] +
                             (tile.batch * tiling_.row_blocks[tile.tensor] + tile.row_block) * x.cols + tile.col0];
        for (int64_t j = 0; j < tile.cols; ++j) cols[c][j] = 0.0;
      }
      along_rows(band, [&](int64_t c, const Tile& tile, int64_t i, int64_t offset) __attribute__((always_inline)) {
        const E* p = at(x.param, offset);
        const E* g = at(x.grad, offset);
        double* col = cols[c];
        double row_lanes[kLanes] = {};
        Lanes p_lane(p_lanes[c]);
        in_lanes(tile.cols, [&](int64_t j, int l) __attribute__((always_inline)) {
          const T g2 = Rule::square(load(g, j), s);
          const T pj = load(p, j);
          row_lanes[l] += static_cast<double>(g2);
          p_lane.sum[l] += static_cast<double>(pj * pj);
          col[j] += static_cast<double>(g2);
        });
        p_lane.store(p_lanes[c]);
        row_part_[tiling_.row_part[tile.tensor] + (tile.batch * tiling_.col_blocks[tile.tensor] + tile.col_block) * x.rows +
                  i] = lane_total(row_lanes);
      });
      for (int64_t c = 0; c < band.count; ++c) sums_[(band.first + c) * 2] = lane_total(p_lanes[c]);
    } else {
      const E* p = at(x.param, first.col0);
      const E* g = at(x.grad, first.col0);
      E* v = at(x.variance, first.col0);
      double p_square[kLanes] = {}, u_square[kLanes] = {};
      in_lanes(first.cols, [&](int64_t j, int l) __attribute__((always_inline)) {
        const T gj = load(g, j), pj = load(p, j);
        store(v, j, Rule::second_moment(load(v, j), Rule::square(gj, s), s));
        const T u = Rule::update(gj, load(v, j), s);  // the stored V̂: the write pass reads it again
        p_square[l] += static_cast<double>(pj * pj);
        u_square[l] += static_cast<double>(u * u);
      });
      sums_[band.first * 2] = lane_total(p_square);
      sums_[band.first * 2 + 1] = lane_total(u_square);
    }
  }

  // Between the first two passes of a factored tensor: R and C, the floored mean of R per matrix, and
  // from them the scales of 1/√V̂ per row and per column (O(rows + cols); partials added in order).
  void factors(int64_t t) {
    const AdafactorTensor& x = view_.tensors[t];
    if (x.row_var == nullptr || numel(t) == 0) return;
    const auto s = scalars_of<T>(x);
    thread_local std::vector<double> col_sum_buffer;
    double* col_sum = scratch(col_sum_buffer, static_cast<size_t>(x.cols));
    for (int64_t b = 0; b < x.batches; ++b) {
      E* r = at(x.row_var, b * x.rows);
      E* c = at(x.col_var, b * x.cols);
      double r_total = 0.0;
      for (int64_t i = 0; i < x.rows; ++i) {
        double sum = 0.0;
        for (int64_t cb = 0; cb < tiling_.col_blocks[t]; ++cb)
          sum += row_part_[tiling_.row_part[t] + (b * tiling_.col_blocks[t] + cb) * x.rows + i];
        store(r, i, Rule::second_moment(load(r, i), static_cast<T>(sum / static_cast<double>(x.cols)), s));
        r_total += static_cast<double>(load(r, i));
      }
      const double* part = &col_part_[tiling_.col_part[t] + b * tiling_.row_blocks[t] * x.cols];
      for (int64_t j = 0; j < x.cols; ++j) col_sum[j] = 0.0;
      for (int64_t rb = 0; rb < tiling_.row_blocks[t]; ++rb)
        for (int64_t j = 0; j < x.cols; ++j) col_sum[j] += part[rb * x.cols + j];
      T* col_scales = &scales_[scale_at_[t] + size_t(x.batches * x.rows + b * x.cols)];
      for (int64_t j = 0; j < x.cols; ++j) {
        store(c, j, Rule::second_moment(load(c, j), static_cast<T>(col_sum[j] / static_cast<double>(x.rows)), s));
        col_scales[j] = Rule::inverse_root(load(c, j));
      }
      const T mean = static_cast<T>(r_total / static_cast<double>(x.rows));
      const T floor = mean < s.eps1 ? s.eps1 : mean;  // clamp_(min=eps1): a NaN stays
      T* row_scales = &scales_[scale_at_[t] + size_t(b * x.rows)];
      for (int64_t i = 0; i < x.rows; ++i) row_scales[i] = Rule::row_scale(load(r, i), floor);
    }
  }

  // U of the elements of row i of a factored tile, from the row's and the columns' scales.
  auto factored_row(const Tile& tile, const rules::AdafactorScalars<T>& s, int64_t i, const E* g) const {
    const AdafactorTensor& x = view_.tensors[tile.tensor];
    const size_t first = scale_at_[tile.tensor];
    const T row = scales_[first + size_t(tile.batch * x.rows + i)];
    const T* col = &scales_[first + size_t(x.batches * x.rows + tile.batch * x.cols + tile.col0)];
    return [=, &s](int64_t j) __attribute__((always_inline)) { return Rule::factored_update(load(g, j), row, col[j], s); };
  }

  // Pass 2 of a factored band: per tile ‖U‖².
  void norm_pass(const Band& band) {
    const Tile& first = head(band);
    const AdafactorTensor& x = view_.tensors[first.tensor];
    if (x.row_var == nullptr) return;
    const auto s = scalars_of<T>(x);
    double u_lanes[kBandTiles][kLanes] = {};
    along_rows(band, [&](int64_t c, const Tile& tile, int64_t i, int64_t offset) __attribute__((always_inline)) {
      const auto u_at = factored_row(tile, s, i, at(x.grad, offset));
      Lanes u_lane(u_lanes[c]);
      in_lanes(tile.cols, [&](int64_t j, int l) __attribute__((always_inline)) {
        const T u = u_at(j);
        u_lane.sum[l] += static_cast<double>(u * u);
      });
      u_lane.store(u_lanes[c]);
    });
    for (int64_t c = 0; c < band.count; ++c) sums_[(band.first + c) * 2 + 1] = lane_total(u_lanes[c]);
  }


  // A tensor's step size, from its tiles' partials in order.
  void step_size(int64_t t) {
    double p_square = 0.0, u_square = 0.0;
    for (int64_t k = tiling_.first_tile[t]; k < tiling_.first_tile[t + 1]; ++k) {
      p_square += sums_[k * 2];
      u_square += sums_[k * 2 + 1];
    }
    step_[t] = static_cast<T>(Rule::step_size(square_root(p_square), square_root(u_square),
                                              static_cast<double>(numel(t)), scalars_of<double>(view_.tensors[t])));
  }

  // The last pass of a band: the params.
  void write_pass(const Band& band) {
    const Tile& first = head(band);
    const AdafactorTensor& x = view_.tensors[first.tensor];
    const T size = step_[first.tensor];
    const auto s = scalars_of<T>(x);
    if (x.row_var != nullptr) {
      along_rows(band, [&](int64_t, const Tile& tile, int64_t i, int64_t offset) __attribute__((always_inline)) {
        E* p = at(x.param, offset);
        const auto u_at = factored_row(tile, s, i, at(x.grad, offset));
        simd_for(0, tile.cols, [&](int64_t j) __attribute__((always_inline)) {
          store(p, j, Rule::write(load(p, j), u_at(j), size, s));
        });
      });
    } else {
      E* p = at(x.param, first.col0);
      const E* g = at(x.grad, first.col0);
      const E* v = at(x.variance, first.col0);
      simd_for(0, first.cols, [&](int64_t j) __attribute__((always_inline)) {
        store(p, j, Rule::write(load(p, j), Rule::update(load(g, j), load(v, j), s), size, s));
      });
    }
  }

  const AdafactorView& view_;
  const Tiling tiling_;
  double* sums_;      // per tile: ‖p‖², ‖U‖² partials
  double* row_part_;  // per factored tensor, batch, column block and row: the row's partial sum of g²
  double* col_part_;  // per factored tensor, batch, row block and column: the column's partial sum of g²
  std::vector<size_t> scale_at_;  // per tensor: batches × rows row scales, then batches × cols column scales
  std::vector<T> scales_;
  std::vector<T> step_;  // per tensor: α/max(1, RMS(U)/d)
};

}  // namespace adafactor_detail

// One Adafactor step over every tensor of the view, each with its own scalars: T = float or double,
// or the 16-bit storage types (adafactor_detail::Stored16<true> bfloat16, <false> float16), computed in float.
template <typename T>
void adafactor(const AdafactorView& view) {
  adafactor_detail::AdafactorStep<adafactor_detail::Stored<T>>(view).run();
}
template <typename Storage>
void adafactor_stored(const AdafactorView& view) {
  adafactor_detail::AdafactorStep<Storage>(view).run();
}

}  // namespace cpu
FUSEDOPT_NAMESPACE_END
