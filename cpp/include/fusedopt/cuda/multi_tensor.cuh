// The GPU side of multi-tensor apply. The host builds a chunk table once per set of lists (for an
// optimizer: once per plan): one 16-byte record per chunk (its tensor, element count and first
// element) and a row of pointers per list. The grads' row is rewritten by an asynchronous copy when
// the grads move (python/fusedopt/backends/cuda.py); nothing else changes from step to step. One
// block walks one chunk (the grid is the number of chunks; the loops still stride, so a smaller grid
// stays correct), with a chunk size that grows with the problem so that per-chunk work amortizes.
//
// Within a chunk a thread loads one element of every list into registers, applies the rule and
// stores every list but the grads. The kernel receives the lists the rule variant uses
// (Rule::present), in slot order; a slot the variant does not use is a register the rule never
// reads. When every list of the tensor is 16-byte aligned a thread moves 16 bytes per list at a
// time (4 floats or 2 doubles) with streaming loads and stores (each byte is touched once: evict it
// first), two packs per list in flight; the chunk size is a multiple of 4, so every chunk of an
// aligned tensor starts aligned too.
//
// Kept free of CUDA-only syntax beyond the built-in index variables and the streaming intrinsics, so
// tests can compile it on the host with those emulated (tests/cuda/host_emulation.hpp).
#pragma once
#include "../optimizers.hpp"
#include "../philox.hpp"
#include "../rules/storage.hpp"

namespace fusedopt {
namespace cuda {

constexpr int kBlockThreads = 256;  // every kernel's block (the backend's THREADS); __launch_bounds__

// One chunk: elements [begin, begin + count) of tensor `tensor` (16 bytes: one vector load).
struct alignas(16) ChunkInfo {
  int tensor;
  int count;
  long long begin;
};

struct ChunkTable {
  const ChunkInfo* chunks;
  const unsigned long long* ptrs; // ptrs[list * n_tensors + t]
  int n_tensors, n_chunks;
};

// Chunk `chunk` of the table: its tensor and its elements [begin, end) within it.
struct ChunkRange {
  int t;
  long long begin, end;
};
__device__ __forceinline__ ChunkRange chunk_range(const ChunkTable& c, int chunk) {
  const ChunkInfo info = c.chunks[chunk];
  return {info.tensor, info.begin, info.begin + info.count};
}

// 16 bytes of T, loaded and stored with one vector instruction.
template <typename T>
struct alignas(16) Pack {
  static constexpr int lanes = 16 / sizeof(T);
  T v[lanes];
};

// Streaming (evict-first) 16-byte accesses to global memory: LDG/STG.E.EF.128 on the GPU, where a
// plain dereference of a pointer read from the table would be a generic LD/ST.
__device__ __forceinline__ Pack<float> load_streaming(const float* p) {
  const float4 v = __ldcs(reinterpret_cast<const float4*>(p));
  return {{v.x, v.y, v.z, v.w}};
}
__device__ __forceinline__ Pack<double> load_streaming(const double* p) {
  const double2 v = __ldcs(reinterpret_cast<const double2*>(p));
  return {{v.x, v.y}};
}
__device__ __forceinline__ void store_streaming(float* p, const Pack<float>& x) {
  __stcs(reinterpret_cast<float4*>(p), float4{x.v[0], x.v[1], x.v[2], x.v[3]});
}
__device__ __forceinline__ void store_streaming(double* p, const Pack<double>& x) {
  __stcs(reinterpret_cast<double2*>(p), double2{x.v[0], x.v[1]});
}

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

// One element of every slot: loaded, op(slot values...) on it (the rule), stored (load(List<l>) /
// store(List<l>, value) reach list l).
template <class Rule, typename T, typename Load, typename Store, typename Op, int... K>
__device__ __forceinline__ void with_element(Load load, Store store, Slots<K...>, Op op) {
  T e[sizeof...(K)] = {load_slot<Rule::present, K, T>(load)...};
  op(e[K]...);
  (store_slot<Rule::present, K>(store, e[K]), ...);
}

// The rule's element: an elementwise rule's, or a two-pass rule's second pass with its tensor's factor.
template <class Rule, typename T, typename Load, typename Store, int... K>
__device__ __forceinline__ void update(const typename Rule::template Scalars<T>& s, T factor, Load load, Store store,
                                      Slots<K...> slots) {
  with_element<Rule, T>(load, store, slots, [&](auto&... x) {
    if constexpr (rules::NormCount<Rule>::value >= 0) Rule::element(x..., s, factor);
    else Rule::element(x..., s);
  });
}

// The rule on every lane of one pack per list (x[k]: list k's pack), in registers.
template <class Rule, typename T, int kLists>
__device__ __forceinline__ void update_packs(const typename Rule::template Scalars<T>& s, T factor, Pack<T> (&x)[kLists]) {
  using kSlots = typename MakeSlots<count_names(Rule::slots)>::type;
#pragma unroll
  for (int lane = 0; lane < Pack<T>::lanes; ++lane)
    update<Rule, T>(
        s, factor, [&](auto list) { return x[decltype(list)::index].v[lane]; },
        [&](auto list, T value) { x[decltype(list)::index].v[lane] = value; }, kSlots{});
}

// factors: a two-pass rule's per-tensor factors (from its first pass; unused for an elementwise rule or
// a variant without norms, whose factor is 1).
template <class Rule, typename T>
__device__ __forceinline__ void for_each_element(const ChunkTable& c, const typename Rule::template Scalars<T>& s,
                                                 const T* factors = nullptr) {
  constexpr int kLists = rules::popcount(Rule::present);
  constexpr int kLanes = Pack<T>::lanes;
  using kSlots = typename MakeSlots<count_names(Rule::slots)>::type;
  for (int chunk = blockIdx.x; chunk < c.n_chunks; chunk += gridDim.x) {
    const auto [t, begin, end] = chunk_range(c, chunk);
    const T factor = rules::NormCount<Rule>::value > 0 ? factors[t] : T(1);
    T* ptr[kLists];
    unsigned long long address_bits = 0;
#pragma unroll
    for (int k = 0; k < kLists; ++k) {
      const unsigned long long address = c.ptrs[k * c.n_tensors + t];
      ptr[k] = reinterpret_cast<T*>(address) + begin;
      address_bits |= address;
    }
    const long long count = end - begin;
    long long scalar_begin = 0;
    if (address_bits % 16 == 0) {
      // Two packs per list in flight: both loaded before either is computed.
      const long long packs = count / kLanes;
      const long long stride = blockDim.x;
      for (long long j = threadIdx.x; j < packs; j += 2 * stride) {
        const bool second = j + stride < packs;
        Pack<T> x[kLists], y[kLists];
#pragma unroll
        for (int k = 0; k < kLists; ++k) x[k] = load_streaming(ptr[k] + j * kLanes);
        if (second) {
#pragma unroll
          for (int k = 0; k < kLists; ++k) y[k] = load_streaming(ptr[k] + (j + stride) * kLanes);
        }
        update_packs<Rule, T>(s, factor, x);
#pragma unroll
        for (int k = 0; k < kLists; ++k)
          if (k != 1) store_streaming(ptr[k] + j * kLanes, x[k]);
        if (second) {
          update_packs<Rule, T>(s, factor, y);
#pragma unroll
          for (int k = 0; k < kLists; ++k)
            if (k != 1) store_streaming(ptr[k] + (j + stride) * kLanes, y[k]);
        }
      }
      scalar_begin = packs * kLanes;
    }
    for (long long i = scalar_begin + threadIdx.x; i < count; i += blockDim.x)
      update<Rule, T>(
          s, factor, [&](auto list) { return __ldcs(ptr[decltype(list)::index] + i); },
          [&](auto list, T value) { __stcs(ptr[decltype(list)::index] + i, value); }, kSlots{});
  }
}

// --- the first pass of a two-pass rule (LAMB, LARS) -------------------------------------------------
//
// One thread per norm chunk of a table cut in the CPU's norm chunks (cpu/apply.hpp: kNormChunk
// elements): the rule's first pass over the chunk (its state updates), and the squared-norm terms
// summed in 16 lanes of double, element j of the chunk in lane j % 16, the lanes then added 0..15,
// as the CPU sums them. The thread that finishes a tensor's last chunk adds the tensor's chunk sums
// in chunk order and writes its factor: the CPU's bits, in one launch. Threads meet only through
// that per-tensor counter (an atomic), which the last one resets for the next step.
constexpr int kNormLanes = 16;

// Two sums over elements [begin, end) of a chunk, each in 16 lanes of double (element j − begin in lane
// (j − begin) % 16, in order), the lanes then added 0..15: the CPU's order. terms(j, a, b) gives element
// j's two terms. Written to out[0], out[1].
template <typename Terms>
__device__ __forceinline__ void lane_sums(long long begin, long long end, Terms terms, double* out) {
  double lane0[kNormLanes] = {}, lane1[kNormLanes] = {};
  for (long long i = begin; i < end; i += kNormLanes) {
#pragma unroll
    for (int lane = 0; lane < kNormLanes; ++lane) {
      if (i + lane < end) {
        double a = 0.0, b = 0.0;
        terms(i + lane, a, b);
        lane0[lane] += a;
        lane1[lane] += b;
      }
    }
  }
  double sum0 = 0.0, sum1 = 0.0;
#pragma unroll
  for (int lane = 0; lane < kNormLanes; ++lane) {
    sum0 += lane0[lane];
    sum1 += lane1[lane];
  }
  out[0] = sum0;
  out[1] = sum1;
}

// After a thread wrote its chunk's sums: true for the one that finishes the last of `count` chunks
// counted by *counter, which then resets it for the next launch. Threads meet only here.
__device__ __forceinline__ bool last_to_finish(unsigned* counter, unsigned count) {
  __threadfence();  // this chunk's sums are visible before the counter says so
  if (atomicAdd(counter, 1u) + 1u != count) return false;
  __threadfence();
  *counter = 0u;
  return true;
}

// The pairs of sums of chunks [first, last), written by other threads, added in chunk order.
__device__ __forceinline__ void ordered_sums(const double* sums, int first, int last, double* out) {
  const volatile double* all = sums;  // not from this thread's cache
  double total0 = 0.0, total1 = 0.0;
  for (int k = first; k < last; ++k) {
    total0 += all[2 * k];
    total1 += all[2 * k + 1];
  }
  out[0] = total0;
  out[1] = total1;
}

template <class Rule, typename T>
__device__ __forceinline__ void norm_chunk(const ChunkTable& c, int chunk, const typename Rule::template Scalars<T>& s,
                                           double* sums) {
  constexpr int kLists = rules::popcount(Rule::present);
  using kSlots = typename MakeSlots<count_names(Rule::slots)>::type;
  const auto [t, begin, end] = chunk_range(c, chunk);
  T* ptr[kLists];
#pragma unroll
  for (int k = 0; k < kLists; ++k) ptr[k] = reinterpret_cast<T*>(c.ptrs[k * c.n_tensors + t]);
  lane_sums(begin, end, [&](long long j, double& a, double& b) {
    T ta = T(0), tb = T(0);
    with_element<Rule, T>([&](auto list) { return ptr[decltype(list)::index][j]; },
                          [&](auto list, T value) { ptr[decltype(list)::index][j] = value; }, kSlots{},
                          [&](auto&... x) { Rule::norm_terms(x..., s, ta, tb); });
    a = static_cast<double>(ta);
    b = static_cast<double>(tb);
  }, &sums[2 * chunk]);
}

// One thread per norm chunk: sum_chunk(chunk) writes the chunk's two sums (norm_chunk, or the 16-bit
// norm_chunk_mixed); the thread that finishes a tensor's last chunk writes its factor.
template <class Rule, typename T, typename SumChunk>
__device__ __forceinline__ void norms_and_factors(const ChunkTable& c, const int* first_chunk, double* sums, unsigned* done,
                                                  T* factors, const typename Rule::template Scalars<T>& s,
                                                  SumChunk sum_chunk) {
  static_assert(rules::NormCount<Rule>::value == 2, "the first pass sums two norms");
  for (long long chunk = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x; chunk < c.n_chunks;
       chunk += static_cast<long long>(gridDim.x) * blockDim.x) {
    sum_chunk(static_cast<int>(chunk));
    const int t = c.chunks[chunk].tensor;
    if (last_to_finish(&done[t], static_cast<unsigned>(first_chunk[t + 1] - first_chunk[t]))) {
      double norms[2];
      ordered_sums(sums, first_chunk[t], first_chunk[t + 1], norms);
      norms[0] = square_root(norms[0]);
      norms[1] = square_root(norms[1]);
      factors[t] = static_cast<T>(Rule::tensor_factor(norms, s));
    }
  }
}

// --- 16-bit storage (README, "Mixed precision"; the CPU's cpu/mixed.hpp) ------------------------------
//
// Each list has its storage as a template argument, in list order: 0 float32, 2 bfloat16, 3 float16
// (fusedopt::DType's numbers); the math is float32. The table holds, after the lists, a row of float32
// master copies (Master: the param is read from and written to its copy, and written rounded to nearest)
// and a row of tensor ids (the key of the stochastic rounding bits, as uint64 values, not pointers).
// Element i of tensor t rounds a bfloat16 write stochastically (Stochastic) with 16 bits of the Philox
// block of counter (i/2 mod 2^32, i/2 div 2^32, step, id), key (seed mod 2^32, seed div 2^32 xor
// 0x534E4452): words 2(i mod 2) and 2(i mod 2) + 1, 16 bits per slot (the param, then state slots 2, 3, 4)
// — the CPU's bits. One element per thread (no 16-byte packs).
template <int D> struct Storage;
template <> struct Storage<0> {
  __device__ __forceinline__ static float load(const void* p, long long i) { return static_cast<const float*>(p)[i]; }
  __device__ __forceinline__ static void store(void* p, long long i, float v, bool, unsigned) {
    static_cast<float*>(p)[i] = v;
  }
};
template <> struct Storage<2> {
  __device__ __forceinline__ static float load(const void* p, long long i) {
    return rules::bfloat16_to_float(static_cast<const unsigned short*>(p)[i]);
  }
  __device__ __forceinline__ static void store(void* p, long long i, float v, bool stochastic, unsigned random) {
    static_cast<unsigned short*>(p)[i] =
        stochastic ? rules::to_bfloat16_bits_stochastic(v, random) : rules::to_bfloat16_bits(v);
  }
};
template <> struct Storage<3> {
  __device__ __forceinline__ static float load(const void* p, long long i) {
    return rules::float16_to_float(static_cast<const unsigned short*>(p)[i]);
  }
  __device__ __forceinline__ static void store(void* p, long long i, float v, bool, unsigned) {
    static_cast<unsigned short*>(p)[i] = rules::to_float16_bits(v);
  }
};

constexpr unsigned kRoundingKeyDomain = 0x534E4452u;  // cpu/mixed.hpp's

// The slot of list l of a variant (the l-th slot it uses).
__device__ __forceinline__ constexpr int slot_of_list(unsigned present, int l) {
  int k = 0;
  for (int seen = -1;; ++k)
    if (((present >> k) & 1u) != 0 && ++seen == l) return k;
}

constexpr int kPack = 8;  // elements per 16-bit pack: 16 bytes

// Elements [i0, i0 + 8) of an array to a pack in registers (32 bytes of float32, or 16 of 16-bit
// storage), and back: streaming 16-byte global loads and stores (LDG/STG.E.EF.128).
__device__ __forceinline__ void copy_pack(void* to, const void* from, long long i0, bool wide) {
  if (wide) {
    const float4* f = reinterpret_cast<const float4*>(static_cast<const float*>(from) + i0);
    float4* t = static_cast<float4*>(to);
    t[0] = __ldcs(f);
    t[1] = __ldcs(f + 1);
  } else {
    *static_cast<uint4*>(to) = __ldcs(reinterpret_cast<const uint4*>(static_cast<const unsigned short*>(from) + i0));
  }
}
__device__ __forceinline__ void copy_pack_back(void* to, long long i0, const void* from, bool wide) {
  if (wide) {
    float4* t = reinterpret_cast<float4*>(static_cast<float*>(to) + i0);
    const float4* f = static_cast<const float4*>(from);
    __stcs(t, f[0]);
    __stcs(t + 1, f[1]);
  } else {
    __stcs(reinterpret_cast<uint4*>(static_cast<unsigned short*>(to) + i0), *static_cast<const uint4*>(from));
  }
}

// The value of list l of tensor t at element i, from its storage (the param from its master copy).
template <bool Master, int D>
__device__ __forceinline__ float load_stored(int l, const void* base, const float* master, long long i) {
  if (Master && l == 0) return master[i];
  return Storage<D>::load(base, i);
}

// The first pass of a two-pass rule over 16-bit storage: the sums of norm chunk `chunk` (the CPU's
// chunks and lanes, cpu/mixed.hpp), storing nothing: the second pass computes the first pass's state
// again from the stored values, as the CPU's 16-bit path does.
template <class Rule, bool Master, int... D>
__device__ __forceinline__ void norm_chunk_mixed(const ChunkTable& c, int chunk, const typename Rule::template Scalars<float>& s,
                                                 double* sums) {
  constexpr int kLists = rules::popcount(Rule::present);
  constexpr int kTypes[kLists] = {D...};
  using kSlots = typename MakeSlots<count_names(Rule::slots)>::type;
  const auto [t, begin, end] = chunk_range(c, chunk);
  const void* base[kLists];
#pragma unroll
  for (int k = 0; k < kLists; ++k) base[k] = reinterpret_cast<const void*>(c.ptrs[k * c.n_tensors + t]);
  const float* master = Master ? reinterpret_cast<const float*>(c.ptrs[kLists * c.n_tensors + t]) : nullptr;
  lane_sums(begin, end, [&](long long j, double& a, double& b) {
    float ta = 0.0f, tb = 0.0f;
    with_element<Rule, float>(
        [&](auto list) {
          constexpr int l = decltype(list)::index;
          return load_stored<Master, kTypes[l]>(l, base[l], master, j);
        },
        [&](auto, float) {}, kSlots{}, [&](auto&... x) { Rule::norm_terms(x..., s, ta, tb); });
    a = static_cast<double>(ta);
    b = static_cast<double>(tb);
  }, &sums[2 * chunk]);
}

// factors: a two-pass rule's per-tensor factors (nullptr for an elementwise rule).
template <class Rule, bool Master, bool Stochastic, int... D>
__device__ __forceinline__ void for_each_element_mixed(const ChunkTable& c, const typename Rule::template Scalars<float>& s,
                                                       unsigned long long seed, unsigned long long step,
                                                       const float* factors = nullptr) {
  constexpr int kLists = rules::popcount(Rule::present);
  static_assert(sizeof...(D) == kLists, "one storage per list");
  constexpr int kTypes[kLists] = {D...};
  using kSlots = typename MakeSlots<count_names(Rule::slots)>::type;
  for (int chunk = blockIdx.x; chunk < c.n_chunks; chunk += gridDim.x) {
    const auto [t, begin, end] = chunk_range(c, chunk);
    void* base[kLists];
#pragma unroll
    for (int k = 0; k < kLists; ++k) base[k] = reinterpret_cast<void*>(c.ptrs[k * c.n_tensors + t]);
    float* const master = Master ? reinterpret_cast<float*>(c.ptrs[kLists * c.n_tensors + t]) : nullptr;
    const auto id = static_cast<unsigned>(c.ptrs[(kLists + (Master ? 1 : 0)) * c.n_tensors + t]);
    const float factor = factors != nullptr ? factors[t] : 1.0f;  // (a structured binding: not in a lambda)
    // Element i (its global index: the rounding bits' key), its lists at bases[l][at] (the arrays, or a
    // pack staged in registers), its master copy at copy[at].
    const auto element = [&](long long i, void* const* bases, float* copy, long long at) {
      unsigned low = 0u, high = 0u;  // selects, not an index: a per-thread array would go to local memory
      if (Stochastic) {
        const auto pair = static_cast<unsigned long long>(i) >> 1;
        const PhiloxBlock b = philox4x32_10(static_cast<unsigned>(pair), static_cast<unsigned>(pair >> 32),
                                            static_cast<unsigned>(step), id, static_cast<unsigned>(seed),
                                            static_cast<unsigned>(seed >> 32) ^ kRoundingKeyDomain);
        low = (i & 1) ? b.v[2] : b.v[0];
        high = (i & 1) ? b.v[3] : b.v[1];
      }
      with_element<Rule, float>(
          [&](auto list) {
            constexpr int l = decltype(list)::index;
            return load_stored<Master, kTypes[l]>(l, bases[l], copy, at);
          },
          [&](auto list, float value) {
            constexpr int l = decltype(list)::index;
            constexpr int slot = slot_of_list(Rule::present, l);
            constexpr int field = slot == 0 ? 0 : slot - 1;
            if (Master && l == 0) {
              copy[at] = value;
              Storage<kTypes[0]>::store(bases[0], at, value, false, 0u);  // the param: its copy to nearest
            } else {
              Storage<kTypes[l]>::store(bases[l], at, value, Stochastic, (field < 2 ? low : high) >> (16 * (field % 2)));
            }
          },
          kSlots{}, [&](auto&... x) {
            if constexpr (rules::NormCount<Rule>::value >= 0) {
              if constexpr (Rule::first_pass_writes != 0u) {  // the first pass's state, from the stored values
                float unused0, unused1;
                Rule::norm_terms(x..., s, unused0, unused1);
              }
              Rule::element(x..., s, factor);
            } else {
              Rule::element(x..., s);
            }
          });
    };
    // Where every list (and the master copy) is 16-byte aligned, a thread takes packs of 8 elements:
    // 16 bytes of each 16-bit list, 32 of each float32 one, loaded and stored whole; the chunk size is
    // a multiple of 8, so every chunk of an aligned tensor starts aligned.
    unsigned long long address_bits = Master ? reinterpret_cast<unsigned long long>(master) : 0ull;
#pragma unroll
    for (int k = 0; k < kLists; ++k) address_bits |= reinterpret_cast<unsigned long long>(base[k]);
    long long scalar_begin = begin;
    if (address_bits % 16 == 0) {
      const long long packs = (end - begin) / kPack;
      for (long long j = threadIdx.x; j < packs; j += blockDim.x) {
        const long long i0 = begin + j * kPack;
        alignas(16) float wide[kLists][kPack];
        alignas(16) unsigned short narrow[kLists][kPack];
        alignas(16) float copy[kPack];
        void* staged[kLists];
#pragma unroll
        for (int k = 0; k < kLists; ++k) {
          staged[k] = kTypes[k] == 0 ? static_cast<void*>(wide[k]) : static_cast<void*>(narrow[k]);
          copy_pack(staged[k], base[k], i0, kTypes[k] == 0);
        }
        if (Master) copy_pack(copy, master, i0, true);
#pragma unroll
        for (int lane = 0; lane < kPack; ++lane) element(i0 + lane, staged, copy, lane);
#pragma unroll
        for (int k = 0; k < kLists; ++k)
          if (slot_of_list(Rule::present, k) != 1) copy_pack_back(base[k], i0, staged[k], kTypes[k] == 0);  // not the grads
        if (Master) copy_pack_back(master, i0, copy, true);
      }
      scalar_begin = begin + packs * kPack;
    }
    for (long long i = scalar_begin + threadIdx.x; i < end; i += blockDim.x) element(i, base, master, i);
  }
}

}  // namespace cuda
}  // namespace fusedopt

// The kernels' chunk-table parameters: the table's device arrays and counts.
#define FUSEDOPT_CHUNK_PARAMS \
  const fusedopt::cuda::ChunkInfo *chunks, const unsigned long long *ptrs, int n_tensors, int n_chunks
#define FUSEDOPT_CHUNK_TABLE \
  fusedopt::cuda::ChunkTable { chunks, ptrs, n_tensors, n_chunks }
