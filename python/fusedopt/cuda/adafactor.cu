// Adafactor on the GPU (rules/adafactor.hpp), with the CPU's bits: the same tiles as cpu/adafactor.hpp
// (fixed by each tensor's shape), and every sum taken in the CPU's order. A sum the CPU takes in one
// lane of a tile (16 lanes of double, element j of a row segment in lane j % 16, rows in order) is one
// GPU thread's loop in that same order; the lanes of a tile, the tiles of a tensor, the column blocks
// of a row and the row blocks of a column are then added in the CPU's order by one thread each. The
// sums are chains of dependent double additions; their loops are unrolled so that each thread has
// several loads in flight ahead of its chain (the order of the additions does not change).
//
// One step is one launch of adafactor_step_<type>, launched cooperatively (no more blocks than the
// device holds at once) so that the grid can wait for all its threads between phases: each phase
// reads sums that every tile of a tensor wrote in the phase before (column means before any U, ‖U‖
// before any write). The backend (python/fusedopt/backends/cuda.py, adafactor_step) builds the tiles
// and the work lists once per set of arrays. The phases, each a grid-stride loop over its items:
//   1 first_lanes   (tile, lane): ‖p‖² lanes; for a vector tile also V̂ and the ‖U‖² lanes
//     row_sums      (factored tile, row): the row's sum of g² over the tile, in 16 lanes
//     col_sums      (factored tile, column): the column's sum of g² over the tile's rows
//   2 row_factors   (matrix, row): R from its column blocks' sums
//     col_factors   (matrix, column): C from its row blocks' sums, and 1/√C
//   3 row_means     matrix: mean R (rows in order), floored
//   4 row_scales    (matrix, row): the row's 1/√(R/mean)
//   5 norm_lanes    (factored tile, lane): ‖U‖² lanes
//   6 step_sizes    tensor: its step size from its tiles' lanes, in order
//   7 write         a block per tile: the params
// Per-tensor pointers: ptrs[k * n_tensors + t] for k = param, grad, row_var, col_var, variance (0 where
// absent); per-tensor scalars: kFields doubles each (rules::AdafactorScalars' fields). Every array is
// in the params' type: float32, float64, or bfloat16/float16 bits (kernels _bfloat16, _float16) computed
// in float32, a stored value read back as stored (as the CPU).
#include <cooperative_groups.h>

#include "fusedopt/rules/adafactor.hpp"
#include "fusedopt/cuda/multi_tensor.cuh"

namespace {

using fusedopt::rules::Adafactor;
using fusedopt::rules::AdafactorScalars;

constexpr int kLanes = 16;
constexpr int kFields = 9;

// A tensor's shape and where its partial sums and scales live (the backend's TENSOR_FIELDS).
struct TensorInfo {
  long long batches, rows, cols, row_part, col_part, row_blocks, col_blocks, scale_at;
};
// One tile (cpu/adafactor.hpp's Tile).
struct TileInfo {
  long long tensor, batch, row0, rows, col0, cols, row_block, col_block;
};

// The backend's plan of one set of arrays: the tables, the work lists and the scratch of a step.
template <typename T>
struct Work {
  const unsigned long long* ptrs;
  long long n_tensors;
  const TensorInfo* tensors;
  const TileInfo* tiles;
  long long n_tiles;
  const long long* first_tile;  // tensor t's tiles: first_tile[t] .. first_tile[t + 1]
  const long long* row_items;   // (tile, row)
  long long n_row_items;
  const long long* col_items;  // (tile, column of the tile)
  long long n_col_items;
  const long long* row_factor_items;  // (tensor, batch, row)
  long long n_row_factor_items;
  const long long* col_factor_items;  // (tensor, batch, column)
  long long n_col_factor_items;
  const long long* matrix_items;  // (tensor, batch)
  long long n_matrices;
  const double* scalars;
  double* p_lanes;
  double* u_lanes;
  double* row_part;
  double* col_part;
  T* scales;
  T* steps;

  template <typename E>
  __device__ __forceinline__ E* at(int list, long long t) const {
    return reinterpret_cast<E*>(ptrs[list * n_tensors + t]);
  }
  __device__ __forceinline__ bool factored(long long t) const { return ptrs[2 * n_tensors + t] != 0; }
  template <typename U>
  __device__ __forceinline__ AdafactorScalars<U> scalars_of(long long t) const {
    AdafactorScalars<U> s;
    U* fields = &s.grad_sign;
    for (int k = 0; k < kFields; ++k) fields[k] = static_cast<U>(scalars[t * kFields + k]);
    return s;
  }
};

// How the arrays are stored (cpu/adafactor.hpp's Stored types): every array of a call in the params'
// type, the math in Math; a 16-bit write rounds to nearest even, and later reads see the stored value.
template <typename T>
struct Stored {
  using Math = T;
  using Element = T;
  __device__ __forceinline__ static T load(const T* p, long long j) { return p[j]; }
  __device__ __forceinline__ static void store(T* p, long long j, T v) { p[j] = v; }
};
// bfloat16 (D = 2) or float16 (D = 3) bits: multi_tensor.cuh's conversions, rounding to nearest.
template <int D>
struct Stored16 {
  using Math = float;
  using Element = unsigned short;
  __device__ __forceinline__ static float load(const unsigned short* p, long long j) {
    return fusedopt::cuda::Storage<D>::load(p, j);
  }
  __device__ __forceinline__ static void store(unsigned short* p, long long j, float v) {
    fusedopt::cuda::Storage<D>::store(p, j, v, false, 0u);
  }
};

// Where a matrix's scales live in Work::scales: its rows' (batches x rows), its columns' (batches x cols),
// then its floored mean of R (one per batch).
__device__ __forceinline__ long long row_scale_at(const TensorInfo& x, long long b, long long i) {
  return x.scale_at + b * x.rows + i;
}
__device__ __forceinline__ long long col_scale_at(const TensorInfo& x, long long b, long long j) {
  return x.scale_at + x.batches * x.rows + b * x.cols + j;
}
__device__ __forceinline__ long long floor_at(const TensorInfo& x, long long b) {
  return x.scale_at + x.batches * (x.rows + x.cols) + b;
}

// Phase 1: ‖p‖² in lane l of tile k (rows in order, then columns j ≡ l); a vector tile also updates V̂
// and sums ‖U‖².
template <class St, typename T = typename St::Math, typename E = typename St::Element>
__device__ void first_lanes(const Work<T>& w, long long item) {
  const long long k = item / kLanes;
  const int lane = static_cast<int>(item % kLanes);
  const TileInfo tile = w.tiles[k];
  const TensorInfo x = w.tensors[tile.tensor];
  const auto s = w.template scalars_of<T>(tile.tensor);
  const E* p = w.template at<E>(0, tile.tensor);
  const E* g = w.template at<E>(1, tile.tensor);
  double p_sum = 0.0, u_sum = 0.0;
  if (w.factored(tile.tensor)) {
    for (long long i = tile.row0; i < tile.row0 + tile.rows; ++i) {
      const long long first = (tile.batch * x.rows + i) * x.cols + tile.col0;
#pragma unroll 8
      for (long long j = lane; j < tile.cols; j += kLanes) {
        const T pj = St::load(p, first + j);
        p_sum += static_cast<double>(pj * pj);
      }
    }
  } else {
    E* v = w.template at<E>(4, tile.tensor);
#pragma unroll 4
    for (long long j = tile.col0 + lane; j < tile.col0 + tile.cols; j += kLanes) {
      const T gj = St::load(g, j), pj = St::load(p, j);
      St::store(v, j, Adafactor::second_moment(St::load(v, j), Adafactor::square(gj, s), s));
      const T u = Adafactor::update(gj, St::load(v, j), s);  // the stored V̂, as the write reads it
      p_sum += static_cast<double>(pj * pj);
      u_sum += static_cast<double>(u * u);
    }
    w.u_lanes[item] = u_sum;
  }
  w.p_lanes[item] = p_sum;
}

// Phase 1: row i of factored tile k: its sum of g² over the tile's columns, in 16 lanes then added 0..15.
template <class St, typename T = typename St::Math, typename E = typename St::Element>
__device__ void row_sums(const Work<T>& w, long long item) {
  const TileInfo tile = w.tiles[w.row_items[2 * item]];
  const long long i = w.row_items[2 * item + 1];
  const TensorInfo x = w.tensors[tile.tensor];
  const auto s = w.template scalars_of<T>(tile.tensor);
  const E* g = w.template at<E>(1, tile.tensor) + (tile.batch * x.rows + i) * x.cols + tile.col0;
  double lanes[kLanes] = {};
  for (long long j0 = 0; j0 < tile.cols; j0 += kLanes) {
#pragma unroll
    for (int lane = 0; lane < kLanes; ++lane)  // (a constant index: the lanes stay in registers)
      if (j0 + lane < tile.cols) lanes[lane] += static_cast<double>(Adafactor::square(St::load(g, j0 + lane), s));
  }
  double total = 0.0;
#pragma unroll
  for (int lane = 0; lane < kLanes; ++lane) total += lanes[lane];
  w.row_part[x.row_part + (tile.batch * x.col_blocks + tile.col_block) * x.rows + i] = total;
}

// Phase 1: column j of factored tile k: its sum of g² over the tile's rows, in order.
template <class St, typename T = typename St::Math, typename E = typename St::Element>
__device__ void col_sums(const Work<T>& w, long long item) {
  const TileInfo tile = w.tiles[w.col_items[2 * item]];
  const long long j = w.col_items[2 * item + 1];
  const TensorInfo x = w.tensors[tile.tensor];
  const auto s = w.template scalars_of<T>(tile.tensor);
  const E* g = w.template at<E>(1, tile.tensor);
  double sum = 0.0;
#pragma unroll 8
  for (long long i = tile.row0; i < tile.row0 + tile.rows; ++i)
    sum += static_cast<double>(Adafactor::square(St::load(g, (tile.batch * x.rows + i) * x.cols + tile.col0 + j), s));
  w.col_part[x.col_part + (tile.batch * x.row_blocks + tile.row_block) * x.cols + tile.col0 + j] = sum;
}

// Phase 2: R_i of a (tensor, batch, row) item: the row's column-block sums in order, as a mean, into R.
template <class St, typename T = typename St::Math, typename E = typename St::Element>
__device__ void row_factors(const Work<T>& w, long long item) {
  const long long t = w.row_factor_items[3 * item], b = w.row_factor_items[3 * item + 1],
                  i = w.row_factor_items[3 * item + 2];
  const TensorInfo x = w.tensors[t];
  double sum = 0.0;
  for (long long cb = 0; cb < x.col_blocks; ++cb) sum += w.row_part[x.row_part + (b * x.col_blocks + cb) * x.rows + i];
  E* r = w.template at<E>(2, t) + b * x.rows;
  St::store(r, i, Adafactor::second_moment(St::load(r, i), static_cast<T>(sum / static_cast<double>(x.cols)),
                                           w.template scalars_of<T>(t)));
}

// Phase 2: C_j of a (tensor, batch, column) item, from the column's row-block sums in order, and 1/√C_j.
template <class St, typename T = typename St::Math, typename E = typename St::Element>
__device__ void col_factors(const Work<T>& w, long long item) {
  const long long t = w.col_factor_items[3 * item], b = w.col_factor_items[3 * item + 1],
                  j = w.col_factor_items[3 * item + 2];
  const TensorInfo x = w.tensors[t];
  double sum = 0.0;
  for (long long rb = 0; rb < x.row_blocks; ++rb) sum += w.col_part[x.col_part + (b * x.row_blocks + rb) * x.cols + j];
  E* c = w.template at<E>(3, t) + b * x.cols;
  St::store(c, j, Adafactor::second_moment(St::load(c, j), static_cast<T>(sum / static_cast<double>(x.rows)),
                                           w.template scalars_of<T>(t)));
  w.scales[col_scale_at(x, b, j)] = Adafactor::inverse_root(St::load(c, j));
}

// Phase 3: for a (tensor, batch) item: the mean of R (rows in order), floored at eps1.
template <class St, typename T = typename St::Math, typename E = typename St::Element>
__device__ void row_means(const Work<T>& w, long long item) {
  const long long t = w.matrix_items[2 * item], b = w.matrix_items[2 * item + 1];
  const TensorInfo x = w.tensors[t];
  const E* r = w.template at<E>(2, t) + b * x.rows;
  double total = 0.0;
#pragma unroll 8
  for (long long i = 0; i < x.rows; ++i) total += static_cast<double>(St::load(r, i));
  const T mean = static_cast<T>(total / static_cast<double>(x.rows));
  const T eps1 = w.template scalars_of<T>(t).eps1;
  w.scales[floor_at(x, b)] = mean < eps1 ? eps1 : mean;  // clamp_(min=eps1): a NaN stays
}

// Phase 4: row i's scale, of a (tensor, batch, row) item.
template <class St, typename T = typename St::Math, typename E = typename St::Element>
__device__ void row_scales(const Work<T>& w, long long item) {
  const long long t = w.row_factor_items[3 * item], b = w.row_factor_items[3 * item + 1],
                  i = w.row_factor_items[3 * item + 2];
  const TensorInfo x = w.tensors[t];
  const E* r = w.template at<E>(2, t) + b * x.rows;
  w.scales[row_scale_at(x, b, i)] = Adafactor::row_scale(St::load(r, i), w.scales[floor_at(x, b)]);
}

// U of element (i, j) of a factored tensor, batch b, from its row's and column's scales.
template <typename T>
__device__ __forceinline__ T factored_u(const TensorInfo& x, const T* scales, long long b, long long i, long long j,
                                        T grad, const AdafactorScalars<T>& s) {
  return Adafactor::factored_update(grad, scales[row_scale_at(x, b, i)], scales[col_scale_at(x, b, j)], s);
}

// Phase 5: ‖U‖² in lane l of factored tile k (a vector tile's were summed in phase 1).
template <class St, typename T = typename St::Math, typename E = typename St::Element>
__device__ void norm_lanes(const Work<T>& w, long long item) {
  const long long k = item / kLanes;
  const TileInfo tile = w.tiles[k];
  if (!w.factored(tile.tensor)) return;
  const int lane = static_cast<int>(item % kLanes);
  const TensorInfo x = w.tensors[tile.tensor];
  const auto s = w.template scalars_of<T>(tile.tensor);
  const E* g = w.template at<E>(1, tile.tensor);
  double sum = 0.0;
  for (long long i = tile.row0; i < tile.row0 + tile.rows; ++i) {
    const long long first = (tile.batch * x.rows + i) * x.cols;
#pragma unroll 8
    for (long long j = tile.col0 + lane; j < tile.col0 + tile.cols; j += kLanes) {
      const T u = factored_u(x, w.scales, tile.batch, i, j, St::load(g, first + j), s);
      sum += static_cast<double>(u * u);
    }
  }
  w.u_lanes[item] = sum;
}

// Phase 6: tensor t's step size: each tile's lanes added 0..15, the tiles in order.
template <typename T>
__device__ void step_sizes(const Work<T>& w, long long t) {
  if (w.first_tile[t] == w.first_tile[t + 1]) return;
  double p_square = 0.0, u_square = 0.0;
  for (long long k = w.first_tile[t]; k < w.first_tile[t + 1]; ++k) {
    double p_tile = 0.0, u_tile = 0.0;
    for (int lane = 0; lane < kLanes; ++lane) {
      p_tile += w.p_lanes[k * kLanes + lane];
      u_tile += w.u_lanes[k * kLanes + lane];
    }
    p_square += p_tile;
    u_square += u_tile;
  }
  const TensorInfo x = w.tensors[t];
  const double numel = static_cast<double>(x.batches * x.rows * x.cols);
  w.steps[t] = static_cast<T>(Adafactor::step_size(fusedopt::square_root(p_square), fusedopt::square_root(u_square),
                                                   numel, w.template scalars_of<double>(t)));
}

// Phase 7: tile k's params, by this block's threads.
template <class St, typename T = typename St::Math, typename E = typename St::Element>
__device__ void write(const Work<T>& w, long long k) {
  const TileInfo tile = w.tiles[k];
  const TensorInfo x = w.tensors[tile.tensor];
  const auto s = w.template scalars_of<T>(tile.tensor);
  const T step = w.steps[tile.tensor];
  E* p = w.template at<E>(0, tile.tensor);
  const E* g = w.template at<E>(1, tile.tensor);
  const bool factored = w.factored(tile.tensor);
  const E* v = w.template at<E>(4, tile.tensor);
  for (long long e = threadIdx.x; e < tile.rows * tile.cols; e += blockDim.x) {
    const long long i = tile.row0 + e / tile.cols, j = tile.col0 + e % tile.cols;
    const long long at = (tile.batch * x.rows + i) * x.cols + j;
    const T gj = St::load(g, at);
    const T u = factored ? factored_u(x, w.scales, tile.batch, i, j, gj, s) : Adafactor::update(gj, St::load(v, at), s);
    St::store(p, at, Adafactor::write(St::load(p, at), u, step, s));
  }
}

// f(item) for items 0 .. n - 1, spread over the grid's threads.
template <typename F>
__device__ __forceinline__ void each_item(long long n, F f) {
  const long long stride = static_cast<long long>(gridDim.x) * blockDim.x;
  for (long long item = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x; item < n; item += stride) f(item);
}

// One step: the phases in order, the whole grid waiting between two that depend on each other
// (every thread reaches every sync: no thread returns early).
template <class St, typename T = typename St::Math>
__device__ void step(const Work<T>& w) {
  const cooperative_groups::grid_group grid = cooperative_groups::this_grid();
  each_item(w.n_tiles * kLanes, [&](long long item) { first_lanes<St>(w, item); });
  each_item(w.n_row_items, [&](long long item) { row_sums<St>(w, item); });
  each_item(w.n_col_items, [&](long long item) { col_sums<St>(w, item); });
  grid.sync();
  each_item(w.n_row_factor_items, [&](long long item) { row_factors<St>(w, item); });
  each_item(w.n_col_factor_items, [&](long long item) { col_factors<St>(w, item); });
  grid.sync();
  each_item(w.n_matrices, [&](long long item) { row_means<St>(w, item); });
  grid.sync();
  each_item(w.n_row_factor_items, [&](long long item) { row_scales<St>(w, item); });
  grid.sync();
  each_item(w.n_tiles * kLanes, [&](long long item) { norm_lanes<St>(w, item); });
  grid.sync();
  each_item(w.n_tensors, [&](long long t) { step_sizes<T>(w, t); });
  grid.sync();
  for (long long k = blockIdx.x; k < w.n_tiles; k += gridDim.x) write<St>(w, k);
}

}  // namespace

#define FUSEDOPT_ADAFACTOR_KERNEL(SUFFIX, ST, T)                                                                      \
  extern "C" __global__ void adafactor_step_##SUFFIX(                                                              \
      const unsigned long long* ptrs, long long n_tensors, const TensorInfo* tensors, const TileInfo* tiles,       \
      long long n_tiles, const long long* first_tile, const long long* row_items, long long n_row_items,           \
      const long long* col_items, long long n_col_items, const long long* row_factor_items,                        \
      long long n_row_factor_items, const long long* col_factor_items, long long n_col_factor_items,               \
      const long long* matrix_items, long long n_matrices, const double* scalars, double* p_lanes,                 \
      double* u_lanes, double* row_part, double* col_part, T* scales, T* steps) {                                  \
    step<ST>(Work<T>{ptrs, n_tensors, tensors, tiles, n_tiles, first_tile, row_items, n_row_items, col_items,     \
                     n_col_items, row_factor_items, n_row_factor_items, col_factor_items, n_col_factor_items,      \
                     matrix_items, n_matrices, scalars, p_lanes, u_lanes, row_part, col_part, scales, steps});      \
  }

FUSEDOPT_ADAFACTOR_KERNEL(float32, Stored<float>, float)
FUSEDOPT_ADAFACTOR_KERNEL(float64, Stored<double>, double)
FUSEDOPT_ADAFACTOR_KERNEL(bfloat16, Stored16<2>, float)
FUSEDOPT_ADAFACTOR_KERNEL(float16, Stored16<3>, float)
