// Reductions over a list of gradients on the GPU: their sum of squares and whether all are finite
// (loss scaling and clipping, fusedopt.functional.grad_norm), with the CPU's bits (cpu/grad_norm.hpp).
// One thread per 4,096-element chunk of a table cut like the CPU's norm chunks sums its chunk in 16
// lanes of double and writes the chunk's sums; the thread that finishes the last chunk (an atomic
// counter, which it resets) adds every chunk's sums in chunk order into out[0] (the squares) and out[1]
// (0 when all finite, else NaN). One launch; threads meet only through the counter.
#include "fusedopt/cuda/multi_tensor.cuh"

namespace {

template <typename T>
__device__ void grad_norm(const fusedopt::cuda::ChunkTable& c, double* sums, unsigned* done, double* out) {
  constexpr int kLanes = fusedopt::cuda::kNormLanes;
  for (long long chunk = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x; chunk < c.n_chunks;
       chunk += static_cast<long long>(gridDim.x) * blockDim.x) {
    const int t = c.chunk_tensor[chunk];
    const long long begin = c.chunk_start[chunk];
    const long long end = begin + c.chunk_size < c.sizes[t] ? begin + c.chunk_size : c.sizes[t];
    const T* g = reinterpret_cast<const T*>(c.ptrs[t]);
    double squares[kLanes] = {}, nonfinite[kLanes] = {};
    for (long long i = begin; i < end; i += kLanes) {
#pragma unroll
      for (int lane = 0; lane < kLanes; ++lane) {
        if (i + lane < end) {
          const double x = static_cast<double>(g[i + lane]);
          squares[lane] += x * x;
          nonfinite[lane] += x - x;
        }
      }
    }
    double sum = 0.0, bad = 0.0;
#pragma unroll
    for (int lane = 0; lane < kLanes; ++lane) {
      sum += squares[lane];
      bad += nonfinite[lane];
    }
    sums[2 * chunk] = sum;
    sums[2 * chunk + 1] = bad;
    __threadfence();  // this chunk's sums are visible before the counter says so
    if (atomicAdd(done, 1u) + 1u == static_cast<unsigned>(c.n_chunks)) {
      __threadfence();
      const volatile double* all = sums;  // written by other threads: not from this one's cache
      double total = 0.0, total_bad = 0.0;
      for (int k = 0; k < c.n_chunks; ++k) {
        total += all[2 * k];
        total_bad += all[2 * k + 1];
      }
      out[0] = total;
      out[1] = total_bad;
      *done = 0u;  // ready for the next call
    }
  }
}

}  // namespace

extern "C" __global__ void grad_norm_float32(FUSEDOPT_CHUNK_PARAMS, double* sums, unsigned* done, double* out) {
  grad_norm<float>(FUSEDOPT_CHUNK_TABLE, sums, done, out);
}

extern "C" __global__ void grad_norm_float64(FUSEDOPT_CHUNK_PARAMS, double* sums, unsigned* done, double* out) {
  grad_norm<double>(FUSEDOPT_CHUNK_TABLE, sums, done, out);
}
