// The GPU side of multi-tensor apply. The host builds a chunk table once per tensor list (tensor
// index and first element of each chunk); one launch walks it, each block taking whole chunks
// (grid-stride, so a grid sized to the device covers any number of chunks).
//
// Within a chunk a thread loads one element of every slot into registers, applies the optimizer's
// rule and stores the slots the rule writes. When every slot of the tensor is 16-byte aligned it
// moves 16 bytes per slot at a time (4 floats or 2 doubles, one vector instruction each); the
// chunk size is a multiple of 4, so every chunk of an aligned tensor starts aligned too.
//
// Kept free of CUDA-only syntax beyond the built-in index variables, so tests can compile it on
// the host with those emulated (tests/cuda/host_emulation.hpp).
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

// 16 bytes of T, loaded and stored with one vector instruction.
template <typename T>
struct alignas(16) Pack {
  static constexpr int lanes = 16 / sizeof(T);
  T v[lanes];
};

// element(x) for every element of every chunk, where x[k] is the element of slot k. Slot k is
// stored back when bit k of Written is set (grads, slot 1, are only read).
template <typename T, int Slots, unsigned Written, typename F>
__device__ __forceinline__ void for_each_element(const ChunkTable& c, F element) {
  constexpr int kLanes = Pack<T>::lanes;
  for (int chunk = blockIdx.x; chunk < c.n_chunks; chunk += gridDim.x) {
    const int t = c.chunk_tensor[chunk];
    const long long begin = c.chunk_start[chunk];
    const long long end = begin + c.chunk_size < c.sizes[t] ? begin + c.chunk_size : c.sizes[t];
    T* ptr[Slots];
    unsigned long long address_bits = 0;
#pragma unroll
    for (int k = 0; k < Slots; ++k) {
      const unsigned long long address = c.ptrs[k * c.n_tensors + t];
      ptr[k] = reinterpret_cast<T*>(address);
      address_bits |= address;
    }
    long long scalar_begin = begin;
    if (address_bits % 16 == 0) {
      const long long vector_end = end - (end - begin) % kLanes;
      for (long long i = begin + static_cast<long long>(threadIdx.x) * kLanes; i < vector_end;
           i += static_cast<long long>(blockDim.x) * kLanes) {
        Pack<T> x[Slots];
#pragma unroll
        for (int k = 0; k < Slots; ++k) x[k] = *reinterpret_cast<const Pack<T>*>(ptr[k] + i);
#pragma unroll
        for (int lane = 0; lane < kLanes; ++lane) {
          T e[Slots];
#pragma unroll
          for (int k = 0; k < Slots; ++k) e[k] = x[k].v[lane];
          element(e);
#pragma unroll
          for (int k = 0; k < Slots; ++k) x[k].v[lane] = e[k];
        }
#pragma unroll
        for (int k = 0; k < Slots; ++k)
          if ((Written >> k) & 1u) *reinterpret_cast<Pack<T>*>(ptr[k] + i) = x[k];
      }
      scalar_begin = vector_end;
    }
    for (long long i = scalar_begin + threadIdx.x; i < end; i += blockDim.x) {
      T e[Slots];
#pragma unroll
      for (int k = 0; k < Slots; ++k) e[k] = ptr[k][i];
      element(e);
#pragma unroll
      for (int k = 0; k < Slots; ++k)
        if ((Written >> k) & 1u) ptr[k][i] = e[k];
    }
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
