// Compares 256-bit AVX2/FMA results (fma, sqrt, div) with the same operations done one element at a
// time, and a copied buffer with its source, on each CPU in turn, to look for a core or VM that
// computes or stores wrong. IEEE makes every result exact, so any mismatch is the machine's. Prints
// the counts per CPU and operation, and the first mismatches with their operands and differing
// bits. See "Open problem" in benchmarks/RESULTS.md.
//   gcc -O2 -mavx2 -mfma -fopenmp -o arith_check dev/arith_check.c -lm && ./arith_check SECONDS
// Exit status 1 when any mismatch was seen.
#define _GNU_SOURCE
#include <immintrin.h>
#include <omp.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define N 4096
#define MAX_CPUS 64
#define SHOWN_PER_CPU 8
enum { FMA, SQRT, DIV, COPY, OPS };
static const char* kOpName[OPS] = {"fma", "sqrt", "div", "copy"};

static double next_uniform(unsigned long long* x) {
  *x ^= *x << 13;
  *x ^= *x >> 7;
  *x ^= *x << 17;
  return (double)(*x >> 11) * 0x1p-53;
}

int main(int argc, char** argv) {
  const double seconds = argc > 1 ? atof(argv[1]) : 30;
  const int cpus = omp_get_num_procs() < MAX_CPUS ? omp_get_num_procs() : MAX_CPUS;
  const time_t start = time(0);
  long checked[MAX_CPUS] = {0}, bad[MAX_CPUS][OPS] = {{0}};
  int shown[MAX_CPUS] = {0};
#pragma omp parallel num_threads(cpus)
  {
    const int t = omp_get_thread_num();
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(t, &set);
    sched_setaffinity(0, sizeof(set), &set);
    double* buf = aligned_alloc(32, 7 * N * sizeof(double));
    double *a = buf, *b = a + N, *c = b + N, *vf = c + N, *vs = vf + N, *vd = vs + N, *copy = vd + N;
    unsigned long long x = 88172645463325252ull + (unsigned long long)t;
    while (difftime(time(0), start) < seconds) {
      for (int i = 0; i < N; ++i) {
        a[i] = next_uniform(&x) + 0.5;
        b[i] = next_uniform(&x) + 0.25;
        c[i] = next_uniform(&x) - 0.5;
      }
      for (int i = 0; i < N; i += 4) {
        const __m256d va = _mm256_load_pd(a + i), vb = _mm256_load_pd(b + i), vc = _mm256_load_pd(c + i);
        _mm256_store_pd(vf + i, _mm256_fmadd_pd(va, vb, vc));
        _mm256_store_pd(vs + i, _mm256_sqrt_pd(vb));
        _mm256_store_pd(vd + i, _mm256_div_pd(va, vb));
      }
      memcpy(copy, a, N * sizeof(double));
      const int cpu = sched_getcpu();
      for (int i = 0; i < N; ++i) {
        const __m128d sa = _mm_set_sd(a[i]), sb = _mm_set_sd(b[i]), sc = _mm_set_sd(c[i]);
        const double want[OPS] = {_mm_cvtsd_f64(_mm_fmadd_sd(sa, sb, sc)), _mm_cvtsd_f64(_mm_sqrt_sd(sb, sb)),
                                  _mm_cvtsd_f64(_mm_div_sd(sa, sb)), a[i]};
        const double got[OPS] = {vf[i], vs[i], vd[i], copy[i]};
        for (int op = 0; op < OPS; ++op) {
          if (memcmp(&got[op], &want[op], sizeof(double)) == 0) continue;
          bad[cpu][op]++;
#pragma omp critical
          if (shown[cpu] < SHOWN_PER_CPU) {
            shown[cpu]++;
            unsigned long long g, w;
            memcpy(&g, &got[op], 8);
            memcpy(&w, &want[op], 8);
            printf("cpu %d %s lane %d: a=%a b=%a c=%a vector=%a scalar=%a differing bits %016llx\n", cpu,
                   kOpName[op], i % 4, a[i], b[i], c[i], got[op], want[op], g ^ w);
          }
        }
      }
      checked[cpu] += N;
    }
    free(buf);
  }
  long total = 0;
  for (int cpu = 0; cpu < cpus; ++cpu) {
    printf("cpu %d: %ld checked, mismatches:", cpu, checked[cpu]);
    for (int op = 0; op < OPS; ++op) {
      printf(" %s %ld", kOpName[op], bad[cpu][op]);
      total += bad[cpu][op];
    }
    printf("\n");
  }
  return total ? 1 : 0;
}
