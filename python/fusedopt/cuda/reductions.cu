// Reductions over a list of gradients on the GPU: their sum of squares and whether all are finite
// (loss scaling and clipping, fusedopt.functional.grad_norm), with the CPU's bits (cpu/grad_norm.hpp).
// One thread per 4,096-element chunk of a table cut like the CPU's norm chunks sums its chunk in 16
// lanes of double and writes the chunk's sums; the thread that finishes the last chunk (an atomic
// counter, which it resets) adds every chunk's sums in chunk order into out[0] (the squares) and out[1]
// (0 when all finite, else NaN). One launch; threads meet only through the counter.
#include "fusedopt/cuda/multi_tensor.cuh"

namespace {

using namespace fusedopt::cuda;

template <typename T>
__device__ void grad_norm(const ChunkTable& c, double* sums, unsigned* done, double* out) {
  for (long long chunk = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x; chunk < c.n_chunks;
       chunk += static_cast<long long>(gridDim.x) * blockDim.x) {
    const auto [t, begin, end] = chunk_range(c, static_cast<int>(chunk));
    const T* g = reinterpret_cast<const T*>(c.ptrs[t]);
    lane_sums(begin, end, [&](long long j, double& square, double& nonfinite) {
      const double x = static_cast<double>(g[j]);
      square = x * x;
      nonfinite = x - x;  // NaN exactly for an inf or a NaN
    }, &sums[2 * chunk]);
    if (last_to_finish(done, static_cast<unsigned>(c.n_chunks))) ordered_sums(sums, 0, c.n_chunks, out);
  }
}

}  // namespace

extern "C" __global__ void grad_norm_float32(FUSEDOPT_CHUNK_PARAMS, double* sums, unsigned* done, double* out) {
  grad_norm<float>(FUSEDOPT_CHUNK_TABLE, sums, done, out);
}

extern "C" __global__ void grad_norm_float64(FUSEDOPT_CHUNK_PARAMS, double* sums, unsigned* done, double* out) {
  grad_norm<double>(FUSEDOPT_CHUNK_TABLE, sums, done, out);
}
