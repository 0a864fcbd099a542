// Philox4x32-10, the counter-based generator of Salmon et al., "Parallel Random Numbers: As Easy
// as 1, 2, 3" (SC'11), as in Random123's philox.h: 10 rounds of a 32x32->64 multiply Feistel
// network over a 128-bit counter with a 64-bit key. Host and device, no state: the output is a
// pure function of (counter, key), so any element can be made by any thread in any order.
#pragma once
#include "common.hpp"

namespace fusedopt {
struct PhiloxBlock {
  unsigned int v[4];
};
}  // namespace fusedopt

FUSEDOPT_NAMESPACE_BEGIN

FUSEDOPT_HD void mul_hi_lo(unsigned int a, unsigned int b, unsigned int& hi, unsigned int& lo) {
  const unsigned long long product = static_cast<unsigned long long>(a) * b;
  hi = static_cast<unsigned int>(product >> 32);
  lo = static_cast<unsigned int>(product);
}

// One 128-bit output block for counter (c0..c3) under key (k0, k1).
FUSEDOPT_HD PhiloxBlock philox4x32_10(unsigned int c0, unsigned int c1, unsigned int c2, unsigned int c3,
                                      unsigned int k0, unsigned int k1) {
  const unsigned int kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u;     // round multipliers
  const unsigned int kWeyl0 = 0x9E3779B9u, kWeyl1 = 0xBB67AE85u;   // key schedule (golden ratio, √3)
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      k0 += kWeyl0;
      k1 += kWeyl1;
    }
    unsigned int hi0, lo0, hi1, lo1;
    mul_hi_lo(kMul0, c0, hi0, lo0);
    mul_hi_lo(kMul1, c2, hi1, lo1);
    const unsigned int n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
    c0 = n0;
    c1 = lo1;
    c2 = n2;
    c3 = lo0;
  }
  return PhiloxBlock{{c0, c1, c2, c3}};
}

FUSEDOPT_NAMESPACE_END
