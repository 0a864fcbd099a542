// The random fills on the GPU. Element i of a fill is value i mod PerBlock of Philox block
// i / PerBlock (rules/init.hpp), so each thread makes whole blocks (grid-stride) with the same
// math as the CPU: the bits are equal for every distribution and output type.
#include "fusedopt/rules/init.hpp"

namespace {

template <typename Out, int Kind>
struct Convert {
  template <typename M>
  __device__ __forceinline__ static Out to(M x) { return x; }
};
template <>
struct Convert<unsigned short, 2> {
  __device__ __forceinline__ static unsigned short to(float x) { return fusedopt::rules::to_float16_bits(x); }
};
template <>
struct Convert<unsigned short, 3> {
  __device__ __forceinline__ static unsigned short to(float x) { return fusedopt::rules::to_bfloat16_bits(x); }
};

// The values of one Philox block, stored with one vector instruction when aligned.
template <typename Out, int N>
struct alignas(sizeof(Out) * N) BlockValues {
  Out v[N];
};

// Out: the stored type; M: the math type (float for the 16-bit outputs); Kind: fusedopt::OutKind.
template <typename Out, typename M, int Kind>
__device__ void fill(Out* out, long long n, const fusedopt::InitHyper& h) {
  using namespace fusedopt;
  constexpr int kPerBlock = rules::PerBlock<M>::value;
  using Values = BlockValues<Out, kPerBlock>;
  const long long n_blocks = (n + kPerBlock - 1) / kPerBlock;
  const bool aligned = reinterpret_cast<unsigned long long>(out) % sizeof(Values) == 0;
  for (long long b = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; b < n_blocks;
       b += static_cast<long long>(gridDim.x) * blockDim.x) {
    M v[4];
    rules::init_block<M>(h, static_cast<unsigned long long>(b), v);
    const long long first = b * kPerBlock;
    if (aligned && first + kPerBlock <= n) {
      Values x;
#pragma unroll
      for (int j = 0; j < kPerBlock; ++j) x.v[j] = Convert<Out, Kind>::to(v[j]);
      *reinterpret_cast<Values*>(out + first) = x;
    } else {
      for (int j = 0; j < kPerBlock && first + j < n; ++j) out[first + j] = Convert<Out, Kind>::to(v[j]);
    }
  }
}

}  // namespace

#define FUSEDOPT_INIT_KERNEL(NAME, OUT, MATH, KIND)                                                  \
  extern "C" __global__ void NAME(OUT* out, long long n, int distribution, double a, double b,      \
                                  double mean, double std, double y_lo, double y_hi,                \
                                  double upper_below, unsigned long long seed,                      \
                                  unsigned long long stream) {                                      \
    const fusedopt::InitHyper h{static_cast<fusedopt::Distribution>(distribution), a, b, mean, std, \
                                y_lo, y_hi, upper_below, seed, stream};                             \
    fill<OUT, MATH, KIND>(out, n, h);                                                                \
  }
FUSEDOPT_INIT_KERNEL(init_fill_float32, float, float, 0)
FUSEDOPT_INIT_KERNEL(init_fill_float64, double, double, 1)
FUSEDOPT_INIT_KERNEL(init_fill_float16, unsigned short, float, 2)
FUSEDOPT_INIT_KERNEL(init_fill_bfloat16, unsigned short, float, 3)
