// Compares 256-bit AVX2/FMA results (fma, sqrt, div) with the same operations done one element at a
// time, on each CPU in turn, to look for a core or VM that computes wrong. IEEE makes both exact, so
// any mismatch is the machine's. See "Open problem" in benchmarks/RESULTS.md.
//   gcc -O2 -mavx2 -mfma -fopenmp -o arith_check tools/arith_check.c -lm && ./arith_check SECONDS
#define _GNU_SOURCE
#include <immintrin.h>
#include <math.h>
#include <omp.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#define N 4096
int main(int argc, char** argv) {
  double seconds = argc > 1 ? atof(argv[1]) : 30;
  time_t start = time(0);
  long checked[64] = {0}, bad[64] = {0};
  #pragma omp parallel num_threads(2)
  {
    int t = omp_get_thread_num();
    cpu_set_t set; CPU_ZERO(&set); CPU_SET(t, &set); sched_setaffinity(0, sizeof(set), &set);
    double *a = aligned_alloc(32, N * 8), *b = aligned_alloc(32, N * 8), *c = aligned_alloc(32, N * 8), *v = aligned_alloc(32, N * 8), *s = aligned_alloc(32, N * 8);
    unsigned long long x = 88172645463325252ull + t;
    while (difftime(time(0), start) < seconds) {
      for (int i = 0; i < N; ++i) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17; a[i] = (double)(x >> 11) * 0x1p-53 + 0.5;
        x ^= x << 13; x ^= x >> 7; x ^= x << 17; b[i] = (double)(x >> 11) * 0x1p-53 + 0.25;
        x ^= x << 13; x ^= x >> 7; x ^= x << 17; c[i] = (double)(x >> 11) * 0x1p-53 - 0.5;
      }
      for (int i = 0; i < N; i += 4) {
        __m256d va = _mm256_load_pd(a + i), vb = _mm256_load_pd(b + i), vc = _mm256_load_pd(c + i);
        __m256d r = _mm256_div_pd(_mm256_fmadd_pd(va, vb, vc), _mm256_add_pd(_mm256_sqrt_pd(vb), _mm256_set1_pd(1e-8)));
        _mm256_store_pd(v + i, r);
      }
      for (int i = 0; i < N; ++i) {
        __m128d sa = _mm_set_sd(a[i]), sb = _mm_set_sd(b[i]), sc = _mm_set_sd(c[i]);
        __m128d r = _mm_div_sd(_mm_fmadd_sd(sa, sb, sc), _mm_add_sd(_mm_sqrt_sd(sb, sb), _mm_set_sd(1e-8)));
        s[i] = _mm_cvtsd_f64(r);
      }
      int cpu = sched_getcpu();
      for (int i = 0; i < N; ++i) if (memcmp(v + i, s + i, 8)) bad[cpu]++;
      checked[cpu] += N;
    }
  }
  for (int c = 0; c < 2; ++c) printf("cpu %d: checked %ld, mismatches %ld\n", c, checked[c], bad[c]);
  return 0;
}
