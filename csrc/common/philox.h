// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011),
// host+device. Counter-based: any block of random bits is a pure function of (key, counter),
// so the fused kernel can regenerate noise sample eps_ij from (seed, i, j) in any order.
#pragma once

#include <cstdint>

#ifdef __CUDACC__
#define UC_RNG_HD __host__ __device__ __forceinline__
#else
#define UC_RNG_HD inline
#endif

namespace uc {

struct Words4 {
  uint32_t w[4];
};

UC_RNG_HD Words4 philox4x32_10(Words4 ctr, uint32_t k0, uint32_t k1) {
  constexpr uint32_t kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u;
  constexpr uint32_t kWeyl0 = 0x9E3779B9u, kWeyl1 = 0xBB67AE85u;
#ifdef __CUDA_ARCH__
#pragma unroll
#endif
  for (int round = 0; round < 10; ++round) {
    const uint64_t p0 = static_cast<uint64_t>(kMul0) * ctr.w[0];
    const uint64_t p1 = static_cast<uint64_t>(kMul1) * ctr.w[2];
    const uint32_t hi0 = static_cast<uint32_t>(p0 >> 32), lo0 = static_cast<uint32_t>(p0);
    const uint32_t hi1 = static_cast<uint32_t>(p1 >> 32), lo1 = static_cast<uint32_t>(p1);
    ctr = Words4{{hi1 ^ ctr.w[1] ^ k0, lo1, hi0 ^ ctr.w[3] ^ k1, lo0}};
    k0 += kWeyl0;
    k1 += kWeyl1;
  }
  return ctr;
}

// The random stream of one noise coordinate: block k of sample i, coordinate j is
// Philox(counter = (i_lo, i_hi, j, k), key = (seed_lo, seed_hi)). A draw that needs more
// bits (rejection sampling, mixtures) asks for further blocks k = 1, 2, ...
class CoordinateStream {
 public:
  UC_RNG_HD CoordinateStream(uint64_t seed, uint64_t sample, uint32_t coord)
      : k0_(static_cast<uint32_t>(seed)), k1_(static_cast<uint32_t>(seed >> 32)),
        i0_(static_cast<uint32_t>(sample)), i1_(static_cast<uint32_t>(sample >> 32)), j_(coord) {}

  UC_RNG_HD Words4 block(uint32_t k) const {
    return philox4x32_10(Words4{{i0_, i1_, j_, k}}, k0_, k1_);
  }

 private:
  uint32_t k0_, k1_, i0_, i1_, j_;
};

// Uniform on the open interval (0, 1) from 52 random bits: (2x + 1) 2^-53 is exact in double,
// never 0 (safe in log) and never 1.
UC_RNG_HD double uniform52(uint32_t hi, uint32_t lo) {
  const uint64_t x = ((static_cast<uint64_t>(hi) << 32) | lo) >> 12;
  return (static_cast<double>(x) + 0.5) * 2.220446049250313e-16;  // 2^-52
}

// Uniform on (0, 1) from 32 bits, for accept/reject tests where 2^-32 resolution is plenty.
UC_RNG_HD double uniform32(uint32_t x) {
  return (static_cast<double>(x) + 0.5) * 2.3283064365386963e-10;  // 2^-32
}

}  // namespace uc
