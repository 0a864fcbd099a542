// The random fills on the GPU. Element i of a fill is value i mod PerBlock of Philox block
// i / PerBlock (rules/init.hpp), so each thread makes whole blocks with the same math as the CPU: the
// bits are equal for every distribution and output type. A thread makes two adjacent blocks per
// iteration (grid-stride over pairs): two independent Philox computations in flight, and 32
// contiguous bytes stored; the truncated normal branches between erfinv's polynomials.
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
  const long long n_pairs = (n_blocks + 1) / 2;
  const bool aligned = reinterpret_cast<unsigned long long>(out) % sizeof(Values) == 0;
  for (long long pair = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; pair < n_pairs;
       pair += static_cast<long long>(gridDim.x) * blockDim.x) {
    M v[2][4];
    const long long b0 = 2 * pair;
    rules::init_block<M, true>(h, static_cast<unsigned long long>(b0), v[0]);
    if (b0 + 1 < n_blocks) rules::init_block<M, true>(h, static_cast<unsigned long long>(b0 + 1), v[1]);
#pragma unroll
    for (int k = 0; k < 2; ++k) {
      const long long first = (b0 + k) * kPerBlock;
      if (aligned && first + kPerBlock <= n) {
        Values x;
#pragma unroll
        for (int j = 0; j < kPerBlock; ++j) x.v[j] = Convert<Out, Kind>::to(v[k][j]);
        *reinterpret_cast<Values*>(out + first) = x;
      } else {
        for (int j = 0; j < kPerBlock && first + j < n; ++j) out[first + j] = Convert<Out, Kind>::to(v[k][j]);
      }
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
