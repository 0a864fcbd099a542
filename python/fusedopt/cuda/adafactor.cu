// Adafactor on the GPU (rules/adafactor.hpp), with the CPU's bits: the same tiles as cpu/adafactor.hpp
// (fixed by each tensor's shape), and every sum taken in the CPU's order. A sum the CPU takes in one
// lane of a tile (16 lanes of double, element j of a row segment in lane j % 16, rows in order) is one
// GPU thread's loop in that same order; the lanes of a tile, the tiles of a tensor, the column blocks
// of a row and the row blocks of a column are then added in the CPU's order by one thread each. The
// The sums are chains of dependent double additions; their loops are unrolled so that each thread has
// several loads in flight ahead of its chain (the order of the additions does not change). The
// backend (python/fusedopt/backends/cuda.py, adafactor_step) builds the tiles and the work lists once
// per set of arrays and launches, in order:
//   1 first_lanes   thread per (tile, lane): ‖p‖² lanes; for a vector tile also V̂ and the ‖U‖² lanes
//   2 row_sums      thread per (factored tile, row): the row's sum of g² over the tile, in 16 lanes
//   3 col_sums      thread per (factored tile, column): the column's sum of g² over the tile's rows
//   4 row_factors   thread per (matrix, row): R from its column blocks' sums
//   5 col_factors   thread per (matrix, column): C from its row blocks' sums, and 1/√C
//   6 row_scales    thread per matrix: mean R, floored, then every row's 1/√(R/mean)
//   7 norm_lanes    thread per (factored tile, lane): ‖U‖² lanes
//   8 step_sizes    thread per tensor: its step size from its tiles' lanes, in order
//   9 write         block per tile: the params
// Per-tensor pointers: ptrs[k * n_tensors + t] for k = param, grad, row_var, col_var, variance (0 where
// absent); per-tensor scalars: kFields doubles each (rules::AdafactorScalars' fields). Every array is
// in the params' type: float32, float64, or bfloat16/float16 bits (kernels _bfloat16, _float16) computed
// in float32, a stored value read back as stored (as the CPU).
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

template <typename T>
__device__ __forceinline__ AdafactorScalars<T> scalars_of(const double* all, long long t) {
  AdafactorScalars<T> s;
  T* fields = &s.grad_sign;
  for (int k = 0; k < kFields; ++k) fields[k] = static_cast<T>(all[t * kFields + k]);
  return s;
}

struct Lists {
  const unsigned long long* ptrs;
  long long n;
  template <typename E>
  __device__ __forceinline__ E* at(int list, long long t) const {
    return reinterpret_cast<E*>(ptrs[list * n + t]);
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

__device__ __forceinline__ long long thread_index() {
  return static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
}

// 1: ‖p‖² in lane l of tile k (rows in order, then columns j ≡ l); a vector tile also updates V̂ and sums ‖U‖².
template <class St, typename T = typename St::Math, typename E = typename St::Element>
__device__ void first_lanes(Lists l, const TensorInfo* tensors, const TileInfo* tiles, long long n_tiles,
                            const double* scalars, double* p_lanes, double* u_lanes) {
  const long long item = thread_index();
  if (item >= n_tiles * kLanes) return;
  const long long k = item / kLanes;
  const int lane = static_cast<int>(item % kLanes);
  const TileInfo tile = tiles[k];
  const TensorInfo x = tensors[tile.tensor];
  const auto s = scalars_of<T>(scalars, tile.tensor);
  const E* p = l.at<E>(0, tile.tensor);
  const E* g = l.at<E>(1, tile.tensor);
  double p_sum = 0.0, u_sum = 0.0;
  if (l.ptrs[2 * l.n + tile.tensor] != 0) {
    for (long long i = tile.row0; i < tile.row0 + tile.rows; ++i) {
      const long long first = (tile.batch * x.rows + i) * x.cols + tile.col0;
#pragma unroll 8
      for (long long j = lane; j < tile.cols; j += kLanes) {
        const T pj = St::load(p, first + j);
        p_sum += static_cast<double>(pj * pj);
      }
    }
  } else {
    E* v = l.at<E>(4, tile.tensor);
#pragma unroll 4
    for (long long j = tile.col0 + lane; j < tile.col0 + tile.cols; j += kLanes) {
      const T gj = St::load(g, j), pj = St::load(p, j);
      St::store(v, j, Adafactor::second_moment(St::load(v, j), Adafactor::square(gj, s), s));
      const T u = Adafactor::update(gj, St::load(v, j), s);  // the stored V̂, as the write reads it
      p_sum += static_cast<double>(pj * pj);
      u_sum += static_cast<double>(u * u);
    }
    u_lanes[item] = u_sum;
  }
  p_lanes[item] = p_sum;
}

// This thread's item of a (tile, index) work list: its tile, the index (a row or a column), the tile's
// tensor and that tensor's scalars; false past the end of the list.
template <typename T>
struct TileItem {
  TileInfo tile;
  long long index;
  TensorInfo x;
  AdafactorScalars<T> s;
};
template <typename T>
__device__ __forceinline__ bool tile_item(const TensorInfo* tensors, const TileInfo* tiles, const long long* items,
                                          long long n_items, const double* scalars, TileItem<T>& out) {
  const long long item = thread_index();
  if (item >= n_items) return false;
  out.tile = tiles[items[2 * item]];
  out.index = items[2 * item + 1];
  out.x = tensors[out.tile.tensor];
  out.s = scalars_of<T>(scalars, out.tile.tensor);
  return true;
}

// 2: row i of factored tile k: its sum of g² over the tile's columns, in 16 lanes then added 0..15.
template <class St, typename T = typename St::Math, typename E = typename St::Element>
__device__ void row_sums(Lists l, const TensorInfo* tensors, const TileInfo* tiles, const long long* items,
                         long long n_items, const double* scalars, double* row_part) {
  TileItem<T> w;
  if (!tile_item(tensors, tiles, items, n_items, scalars, w)) return;
  const auto& [tile, i, x, s] = w;
  const E* g = l.at<E>(1, tile.tensor) + (tile.batch * x.rows + i) * x.cols + tile.col0;
  double lanes[kLanes] = {};
  for (long long j0 = 0; j0 < tile.cols; j0 += kLanes) {
#pragma unroll
    for (int lane = 0; lane < kLanes; ++lane)  // (a constant index: the lanes stay in registers)
      if (j0 + lane < tile.cols) lanes[lane] += static_cast<double>(Adafactor::square(St::load(g, j0 + lane), s));
  }
  double total = 0.0;
#pragma unroll
  for (int lane = 0; lane < kLanes; ++lane) total += lanes[lane];
  row_part[x.row_part + (tile.batch * x.col_blocks + tile.col_block) * x.rows + i] = total;
}

// 3: column j of factored tile k: its sum of g² over the tile's rows, in order.
template <class St, typename T = typename St::Math, typename E = typename St::Element>
__device__ void col_sums(Lists l, const TensorInfo* tensors, const TileInfo* tiles, const long long* items,
                         long long n_items, const double* scalars, double* col_part) {
  TileItem<T> w;
  if (!tile_item(tensors, tiles, items, n_items, scalars, w)) return;
  const auto& [tile, j, x, s] = w;
  const E* g = l.at<E>(1, tile.tensor);
  double sum = 0.0;
#pragma unroll 8
  for (long long i = tile.row0; i < tile.row0 + tile.rows; ++i)
    sum += static_cast<double>(Adafactor::square(St::load(g, (tile.batch * x.rows + i) * x.cols + tile.col0 + j), s));
  col_part[x.col_part + (tile.batch * x.row_blocks + tile.row_block) * x.cols + tile.col0 + j] = sum;
}

// This thread's item of a (tensor, batch[, row or column]) work list (`width` 3, or 2 without the index):
// the tensor, the batch, the index, the tensor's shape and scalars; false past the end of the list.
template <typename T>
struct MatrixItem {
  long long t, b, index;
  TensorInfo x;
  AdafactorScalars<T> s;
};
template <typename T>
__device__ __forceinline__ bool matrix_item(const TensorInfo* tensors, const long long* items, long long n_items,
                                            int width, const double* scalars, MatrixItem<T>& out) {
  const long long item = thread_index();
  if (item >= n_items) return false;
  out.t = items[width * item];
  out.b = items[width * item + 1];
  out.index = width == 3 ? items[width * item + 2] : 0;
  out.x = tensors[out.t];
  out.s = scalars_of<T>(scalars, out.t);
  return true;
}

// 4: R_i of (tensor, batch, row) items: the row's column-block sums in order, as a mean, into R.
template <class St, typename T = typename St::Math, typename E = typename St::Element>
__device__ void row_factors(Lists l, const TensorInfo* tensors, const long long* items, long long n_items,
                            const double* scalars, const double* row_part) {
  MatrixItem<T> w;
  if (!matrix_item(tensors, items, n_items, 3, scalars, w)) return;
  const auto& [t, b, i, x, s] = w;
  double sum = 0.0;
  for (long long cb = 0; cb < x.col_blocks; ++cb) sum += row_part[x.row_part + (b * x.col_blocks + cb) * x.rows + i];
  E* r = l.at<E>(2, t) + b * x.rows;
  St::store(r, i, Adafactor::second_moment(St::load(r, i), static_cast<T>(sum / static_cast<double>(x.cols)), s));
}

// 5: C_j of (tensor, batch, column) items, from the column's row-block sums in order, and 1/√C_j.
template <class St, typename T = typename St::Math, typename E = typename St::Element>
__device__ void col_factors(Lists l, const TensorInfo* tensors, const long long* items, long long n_items,
                            const double* scalars, const double* col_part, T* scales) {
  MatrixItem<T> w;
  if (!matrix_item(tensors, items, n_items, 3, scalars, w)) return;
  const auto& [t, b, j, x, s] = w;
  double sum = 0.0;
  for (long long rb = 0; rb < x.row_blocks; ++rb) sum += col_part[x.col_part + (b * x.row_blocks + rb) * x.cols + j];
  E* c = l.at<E>(3, t) + b * x.cols;
  St::store(c, j, Adafactor::second_moment(St::load(c, j), static_cast<T>(sum / static_cast<double>(x.rows)), s));
  scales[x.scale_at + x.batches * x.rows + b * x.cols + j] = Adafactor::inverse_root(St::load(c, j));
}

// 6: for each (tensor, batch) item: the mean of R (rows in order), floored at eps1, and each row's scale.
template <class St, typename T = typename St::Math, typename E = typename St::Element>
__device__ void row_scales(Lists l, const TensorInfo* tensors, const long long* items, long long n_items,
                           const double* scalars, T* scales) {
  MatrixItem<T> w;
  if (!matrix_item(tensors, items, n_items, 2, scalars, w)) return;
  const auto& [t, b, unused, x, s] = w;
  const E* r = l.at<E>(2, t) + b * x.rows;
  double total = 0.0;
  for (long long i = 0; i < x.rows; ++i) total += static_cast<double>(St::load(r, i));
  const T mean = static_cast<T>(total / static_cast<double>(x.rows));
  const T floor = mean < s.eps1 ? s.eps1 : mean;  // clamp_(min=eps1): a NaN stays
  for (long long i = 0; i < x.rows; ++i) scales[x.scale_at + b * x.rows + i] = Adafactor::row_scale(St::load(r, i), floor);
}

// U of element (i, j) of a factored tensor t, batch b, from its row's and column's scales.
template <typename T>
__device__ __forceinline__ T factored_u(const TensorInfo& x, const T* scales, long long b, long long i, long long j,
                                        T grad, const AdafactorScalars<T>& s) {
  return Adafactor::factored_update(grad, scales[x.scale_at + b * x.rows + i],
                                    scales[x.scale_at + x.batches * x.rows + b * x.cols + j], s);
}

// 7: ‖U‖² in lane l of factored tile k.
template <class St, typename T = typename St::Math, typename E = typename St::Element>
__device__ void norm_lanes(Lists l, const TensorInfo* tensors, const TileInfo* tiles, long long n_tiles,
                           const double* scalars, const T* scales, double* u_lanes) {
  const long long item = thread_index();
  if (item >= n_tiles * kLanes) return;
  const long long k = item / kLanes;
  const TileInfo tile = tiles[k];
  if (l.ptrs[2 * l.n + tile.tensor] == 0) return;  // a vector tile: summed in the first pass
  const int lane = static_cast<int>(item % kLanes);
  const TensorInfo x = tensors[tile.tensor];
  const auto s = scalars_of<T>(scalars, tile.tensor);
  const E* g = l.at<E>(1, tile.tensor);
  double sum = 0.0;
  for (long long i = tile.row0; i < tile.row0 + tile.rows; ++i) {
    const long long first = (tile.batch * x.rows + i) * x.cols;
#pragma unroll 8
    for (long long j = tile.col0 + lane; j < tile.col0 + tile.cols; j += kLanes) {
      const T u = factored_u(x, scales, tile.batch, i, j, St::load(g, first + j), s);
      sum += static_cast<double>(u * u);
    }
  }
  u_lanes[item] = sum;
}

// 8: tensor t's step size: each tile's lanes added 0..15, the tiles in order.
template <typename T>
__device__ void step_sizes(const TensorInfo* tensors, const long long* first_tile, long long n_tensors,
                           const double* scalars, const double* p_lanes, const double* u_lanes, T* steps) {
  const long long t = thread_index();
  if (t >= n_tensors || first_tile[t] == first_tile[t + 1]) return;
  double p_square = 0.0, u_square = 0.0;
  for (long long k = first_tile[t]; k < first_tile[t + 1]; ++k) {
    double p_tile = 0.0, u_tile = 0.0;
    for (int lane = 0; lane < kLanes; ++lane) {
      p_tile += p_lanes[k * kLanes + lane];
      u_tile += u_lanes[k * kLanes + lane];
    }
    p_square += p_tile;
    u_square += u_tile;
  }
  const TensorInfo x = tensors[t];
  const double numel = static_cast<double>(x.batches * x.rows * x.cols);
  steps[t] = static_cast<T>(Adafactor::step_size(fusedopt::square_root(p_square), fusedopt::square_root(u_square),
                                                 numel, scalars_of<double>(scalars, t)));
}

// 9: tile blockIdx.x's params (a grid-stride over tiles when the grid is smaller).
template <class St, typename T = typename St::Math, typename E = typename St::Element>
__device__ void write(Lists l, const TensorInfo* tensors, const TileInfo* tiles, long long n_tiles,
                      const double* scalars, const T* scales, const T* steps) {
  for (long long k = blockIdx.x; k < n_tiles; k += gridDim.x) {
    const TileInfo tile = tiles[k];
    const TensorInfo x = tensors[tile.tensor];
    const auto s = scalars_of<T>(scalars, tile.tensor);
    const T step = steps[tile.tensor];
    E* p = l.at<E>(0, tile.tensor);
    const E* g = l.at<E>(1, tile.tensor);
    const bool factored = l.ptrs[2 * l.n + tile.tensor] != 0;
    const E* v = l.at<E>(4, tile.tensor);
    for (long long e = threadIdx.x; e < tile.rows * tile.cols; e += blockDim.x) {
      const long long i = tile.row0 + e / tile.cols, j = tile.col0 + e % tile.cols;
      const long long at = (tile.batch * x.rows + i) * x.cols + j;
      const T gj = St::load(g, at);
      const T u = factored ? factored_u(x, scales, tile.batch, i, j, gj, s) : Adafactor::update(gj, St::load(v, at), s);
      St::store(p, at, Adafactor::write(St::load(p, at), u, step, s));
    }
  }
}

}  // namespace

#define FUSEDOPT_ADAFACTOR_KERNELS(SUFFIX, ST, T)                                                                      \
  extern "C" __global__ void adafactor_first_lanes_##SUFFIX(                                                       \
      const unsigned long long* ptrs, long long n, const TensorInfo* tensors, const TileInfo* tiles,               \
      long long n_tiles, const double* scalars, double* p_lanes, double* u_lanes) {                                \
    first_lanes<ST>({ptrs, n}, tensors, tiles, n_tiles, scalars, p_lanes, u_lanes);                                 \
  }                                                                                                                \
  extern "C" __global__ void adafactor_row_sums_##SUFFIX(                                                          \
      const unsigned long long* ptrs, long long n, const TensorInfo* tensors, const TileInfo* tiles,               \
      const long long* items, long long n_items, const double* scalars, double* row_part) {                        \
    row_sums<ST>({ptrs, n}, tensors, tiles, items, n_items, scalars, row_part);                                     \
  }                                                                                                                \
  extern "C" __global__ void adafactor_col_sums_##SUFFIX(                                                          \
      const unsigned long long* ptrs, long long n, const TensorInfo* tensors, const TileInfo* tiles,               \
      const long long* items, long long n_items, const double* scalars, double* col_part) {                        \
    col_sums<ST>({ptrs, n}, tensors, tiles, items, n_items, scalars, col_part);                                     \
  }                                                                                                                \
  extern "C" __global__ void adafactor_row_factors_##SUFFIX(const unsigned long long* ptrs, long long n,           \
                                                            const TensorInfo* tensors, const long long* items,     \
                                                            long long n_items, const double* scalars,              \
                                                            const double* row_part) {                              \
    row_factors<ST>({ptrs, n}, tensors, items, n_items, scalars, row_part);                                         \
  }                                                                                                                \
  extern "C" __global__ void adafactor_col_factors_##SUFFIX(const unsigned long long* ptrs, long long n,           \
                                                            const TensorInfo* tensors, const long long* items,     \
                                                            long long n_items, const double* scalars,              \
                                                            const double* col_part, T* scales) {                   \
    col_factors<ST>({ptrs, n}, tensors, items, n_items, scalars, col_part, scales);                                 \
  }                                                                                                                \
  extern "C" __global__ void adafactor_row_scales_##SUFFIX(const unsigned long long* ptrs, long long n,            \
                                                           const TensorInfo* tensors, const long long* items,      \
                                                           long long n_items, const double* scalars, T* scales) {  \
    row_scales<ST>({ptrs, n}, tensors, items, n_items, scalars, scales);                                            \
  }                                                                                                                \
  extern "C" __global__ void adafactor_norm_lanes_##SUFFIX(                                                        \
      const unsigned long long* ptrs, long long n, const TensorInfo* tensors, const TileInfo* tiles,               \
      long long n_tiles, const double* scalars, const T* scales, double* u_lanes) {                                \
    norm_lanes<ST>({ptrs, n}, tensors, tiles, n_tiles, scalars, scales, u_lanes);                                   \
  }                                                                                                                \
  extern "C" __global__ void adafactor_step_sizes_##SUFFIX(const TensorInfo* tensors, const long long* first_tile, \
                                                           long long n_tensors, const double* scalars,             \
                                                           const double* p_lanes, const double* u_lanes,           \
                                                           T* steps) {                                             \
    step_sizes<T>(tensors, first_tile, n_tensors, scalars, p_lanes, u_lanes, steps);                               \
  }                                                                                                                \
  extern "C" __global__ void adafactor_write_##SUFFIX(                                                             \
      const unsigned long long* ptrs, long long n, const TensorInfo* tensors, const TileInfo* tiles,               \
      long long n_tiles, const double* scalars, const T* scales, const T* steps) {                                 \
    write<ST>({ptrs, n}, tensors, tiles, n_tiles, scalars, scales, steps);                                          \
  }

FUSEDOPT_ADAFACTOR_KERNELS(float32, Stored<float>, float)
FUSEDOPT_ADAFACTOR_KERNELS(float64, Stored<double>, double)
FUSEDOPT_ADAFACTOR_KERNELS(bfloat16, Stored16<2>, float)
FUSEDOPT_ADAFACTOR_KERNELS(float16, Stored16<3>, float)
