// The GPU side of multi-tensor apply: one launch walks a chunk table (tensor index and first
// element of each chunk, built once per tensor list on the host) and calls f(t, i) for every element.
#pragma once

namespace fusedopt {
namespace cuda {

struct ChunkTable {
  const int* chunk_tensor;        // tensor of each chunk
  const long long* chunk_start;   // first element of each chunk within its tensor
  const long long* sizes;         // elements per tensor
  const unsigned long long* ptrs; // ptrs[slot * n_tensors + t]
  int n_tensors, n_chunks, chunk_size;
};

template <typename T>
__device__ __forceinline__ T* slot(const ChunkTable& c, int k, int t) {
  return reinterpret_cast<T*>(c.ptrs[k * c.n_tensors + t]);
}

template <typename F>
__device__ __forceinline__ void for_each_element(const ChunkTable& c, F f) {
  for (int chunk = blockIdx.x; chunk < c.n_chunks; chunk += gridDim.x) {
    const int t = c.chunk_tensor[chunk];
    const long long begin = c.chunk_start[chunk];
    const long long end = begin + c.chunk_size < c.sizes[t] ? begin + c.chunk_size : c.sizes[t];
    for (long long i = begin + threadIdx.x; i < end; i += blockDim.x) f(t, i);
  }
}

}  // namespace cuda
}  // namespace fusedopt

// The kernels' common parameters: the chunk table's device arrays and counts.
#define FUSEDOPT_CHUNK_PARAMS                                                                   \
  const int *chunk_tensor, const long long *chunk_start, const long long *sizes,                \
      const unsigned long long *ptrs, int n_tensors, int n_chunks, int chunk_size
#define FUSEDOPT_CHUNK_TABLE \
  fusedopt::cuda::ChunkTable { chunk_tensor, chunk_start, sizes, ptrs, n_tensors, n_chunks, chunk_size }
