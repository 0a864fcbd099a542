// The GPU side of multi-tensor apply. The host builds a chunk table once per tensor list (tensor
// index and first element of each chunk); one launch walks it, each block taking whole chunks
// (grid-stride, so a grid sized to the device covers any number of chunks).
//
// Within a chunk a thread loads one element of every list into registers, applies the rule and
// stores every list but the grads. The kernel receives the lists the rule variant uses
// (Rule::present), in slot order; a slot the variant does not use is a register the rule never
// reads. When every list of the tensor is 16-byte aligned a thread moves 16 bytes per list at a
// time (4 floats or 2 doubles, one vector instruction each); the chunk size is a multiple of 4, so
// every chunk of an aligned tensor starts aligned too.
//
// Kept free of CUDA-only syntax beyond the built-in index variables, so tests can compile it on
// the host with those emulated (tests/cuda/host_emulation.hpp).
#pragma once
#include "../optimizers.hpp"

namespace fusedopt {
namespace cuda {

struct ChunkTable {
  const int* chunk_tensor;        // tensor of each chunk
  const long long* chunk_start;   // first element of each chunk within its tensor
  const long long* sizes;         // elements per tensor
  const unsigned long long* ptrs; // ptrs[list * n_tensors + t]
  int n_tensors, n_chunks, chunk_size;
};

// 16 bytes of T, loaded and stored with one vector instruction.
template <typename T>
struct alignas(16) Pack {
  static constexpr int lanes = 16 / sizeof(T);
  T v[lanes];
};

// 0, 1, ..., N − 1 as a pack (NVRTC has no <utility>).
template <int... K> struct Slots {};
template <int N, int... K> struct MakeSlots : MakeSlots<N - 1, N - 1, K...> {};
template <int... K> struct MakeSlots<0, K...> { using type = Slots<K...>; };

template <int L> struct List { static constexpr int index = L; };  // a list, known at compile time

// The value of slot K: from its list when the variant uses it, else a register the rule never reads.
template <unsigned Present, int K, typename T, typename Load>
__device__ __forceinline__ T load_slot(Load load) {
  if constexpr (((Present >> K) & 1u) != 0) return load(List<rules::list_index(Present, K)>{});
  else return T(0);
}

template <unsigned Present, int K, typename T, typename Store>
__device__ __forceinline__ void store_slot(Store store, T value) {
  if constexpr (((Present >> K) & 1u) != 0 && K != 1) store(List<rules::list_index(Present, K)>{}, value);  // grads: read only
}

// One element of every slot: loaded, the rule, stored (load(List<l>) / store(List<l>, value) reach list l).
template <class Rule, typename T, typename Load, typename Store, int... K>
__device__ __forceinline__ void update(const typename Rule::template Scalars<T>& s, Load load, Store store, Slots<K...>) {
  T e[sizeof...(K)] = {load_slot<Rule::present, K, T>(load)...};
  Rule::element(e[K]..., s);
  (store_slot<Rule::present, K>(store, e[K]), ...);
}

template <class Rule, typename T>
__device__ __forceinline__ void for_each_element(const ChunkTable& c, const typename Rule::template Scalars<T>& s) {
  constexpr int kLists = rules::popcount(Rule::present);
  constexpr int kLanes = Pack<T>::lanes;
  using kSlots = typename MakeSlots<count_names(Rule::slots)>::type;
  for (int chunk = blockIdx.x; chunk < c.n_chunks; chunk += gridDim.x) {
    const int t = c.chunk_tensor[chunk];
    const long long begin = c.chunk_start[chunk];
    const long long end = begin + c.chunk_size < c.sizes[t] ? begin + c.chunk_size : c.sizes[t];
    T* ptr[kLists];
    unsigned long long address_bits = 0;
#pragma unroll
    for (int k = 0; k < kLists; ++k) {
      const unsigned long long address = c.ptrs[k * c.n_tensors + t];
      ptr[k] = reinterpret_cast<T*>(address);
      address_bits |= address;
    }
    long long scalar_begin = begin;
    if (address_bits % 16 == 0) {
      const long long vector_end = end - (end - begin) % kLanes;
      for (long long i = begin + static_cast<long long>(threadIdx.x) * kLanes; i < vector_end;
           i += static_cast<long long>(blockDim.x) * kLanes) {
        Pack<T> x[kLists];
#pragma unroll
        for (int k = 0; k < kLists; ++k) x[k] = *reinterpret_cast<const Pack<T>*>(ptr[k] + i);
#pragma unroll
        for (int lane = 0; lane < kLanes; ++lane)
          update<Rule, T>(
              s, [&](auto list) { return x[decltype(list)::index].v[lane]; },
              [&](auto list, T value) { x[decltype(list)::index].v[lane] = value; }, kSlots{});
#pragma unroll
        for (int k = 0; k < kLists; ++k)
          if (k != 1) *reinterpret_cast<Pack<T>*>(ptr[k] + i) = x[k];
      }
      scalar_begin = vector_end;
    }
    for (long long i = scalar_begin + threadIdx.x; i < end; i += blockDim.x)
      update<Rule, T>(
          s, [&](auto list) { return ptr[decltype(list)::index][i]; },
          [&](auto list, T value) { ptr[decltype(list)::index][i] = value; }, kSlots{});
  }
}

}  // namespace cuda
}  // namespace fusedopt

// The kernels' chunk-table parameters: the table's device arrays and counts.
#define FUSEDOPT_CHUNK_PARAMS                                                                   \
  const int *chunk_tensor, const long long *chunk_start, const long long *sizes,                \
      const unsigned long long *ptrs, int n_tensors, int n_chunks, int chunk_size
#define FUSEDOPT_CHUNK_TABLE \
  fusedopt::cuda::ChunkTable { chunk_tensor, chunk_start, sizes, ptrs, n_tensors, n_chunks, chunk_size }
