// Branch-free double-precision exp and log that GCC can auto-vectorise.
//
// Why not std::exp/std::log: glibc only exposes its vector versions (libmvec) under
// -ffast-math, and -ffast-math assumes no infinities, while uniform noise and support
// edges produce -inf by design. These versions keep the special values explicit
// (selects, no branches) and are accurate to a few ulp on the range we use.
// Results of exp below exp(-708) ~ 3e-308 are flushed to zero.
#pragma once

#include <cstdint>
#include <cstring>
#include <limits>

// Forced inlining: a call to a scalar vexp/vlog inside a hot loop stops its vectorisation,
// and GCC's size heuristics do decline to inline them in larger translation units.
#define UC_ALWAYS_INLINE inline __attribute__((always_inline))

namespace uc {

UC_ALWAYS_INLINE double bits_to_double(uint64_t u) { return __builtin_bit_cast(double, u); }
UC_ALWAYS_INLINE uint64_t double_to_bits(double d) { return __builtin_bit_cast(uint64_t, d); }

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kLn2Hi = 6.93147180369123816490e-01;
constexpr double kLn2Lo = 1.90821492927058770002e-10;
constexpr double kLog2e = 1.44269504088896338700e+00;

// exp(x): x = n ln2 + r, |r| <= ln2/2, exp(r) by a degree-12 Taylor polynomial
// (truncation error < 2e-17 relative), then scale by 2^n through the exponent bits.
UC_ALWAYS_INLINE double vexp(double x) {
  const double xc = x < -708.0 ? -708.0 : (x > 709.782712893384 ? 709.782712893384 : x);
  // Round-to-nearest via the 1.5*2^52 trick: branch-free and vectorisable.
  const double shifter = 6755399441055744.0;
  const double t = xc * kLog2e + shifter;
  const double n = t - shifter;
  const double r = (xc - n * kLn2Hi) - n * kLn2Lo;
  double p = 1.0 / 479001600.0;
  p = p * r + 1.0 / 39916800.0;
  p = p * r + 1.0 / 3628800.0;
  p = p * r + 1.0 / 362880.0;
  p = p * r + 1.0 / 40320.0;
  p = p * r + 1.0 / 5040.0;
  p = p * r + 1.0 / 720.0;
  p = p * r + 1.0 / 120.0;
  p = p * r + 1.0 / 24.0;
  p = p * r + 1.0 / 6.0;
  p = p * r + 0.5;
  p = p * r + 1.0;
  p = p * r + 1.0;
  // t = shifter + n exactly, so the integer n sits in the low bits of t: recover it with
  // integer adds only (AVX2 has no double->int64 conversion) and build 2^n from it.
  // 2^(n-1) * 2 rather than 2^n: n reaches 1024 just below the overflow point.
  const uint64_t n_plus_bias = double_to_bits(t) - double_to_bits(shifter) + 1022;
  const double scale = bits_to_double(n_plus_bias << 52);
  double y = (p * scale) * 2.0;
  y = x < -708.0 ? 0.0 : y;
  y = x > 709.782712893384 ? kInf : y;
  return y;
}

// log(x) for x >= 0: x = m 2^k with m in [sqrt(1/2), sqrt(2)), log m = 2 atanh(f),
// f = (m-1)/(m+1), |f| <= 0.1716, odd series to f^23 (truncation < 1e-18 relative).
UC_ALWAYS_INLINE double vlog(double x) {
  const uint64_t bits = double_to_bits(x);
  // Move the mantissa into [sqrt(1/2), sqrt(2)) by biasing with the bits of sqrt(1/2).
  const uint64_t off = 0x3FE6A09E667F3BCDull;
  const uint64_t tmp = bits - off;
  const uint64_t k_bits = tmp & 0xFFF0000000000000ull;  // (k << 52), k two's complement in 12 bits
  const double m = bits_to_double(bits - k_bits);
  const double f = (m - 1.0) / (m + 1.0);
  const double f2 = f * f;
  double s = 1.0 / 23.0;
  s = s * f2 + 1.0 / 21.0;
  s = s * f2 + 1.0 / 19.0;
  s = s * f2 + 1.0 / 17.0;
  s = s * f2 + 1.0 / 15.0;
  s = s * f2 + 1.0 / 13.0;
  s = s * f2 + 1.0 / 11.0;
  s = s * f2 + 1.0 / 9.0;
  s = s * f2 + 1.0 / 7.0;
  s = s * f2 + 1.0 / 5.0;
  s = s * f2 + 1.0 / 3.0;
  s = s * f2 + 1.0;
  // k to double without an int64 conversion: put its 12 bits under a 2^52 exponent.
  double kd = bits_to_double(0x4330000000000000ull | (k_bits >> 52)) - 4503599627370496.0;
  kd = kd >= 2048.0 ? kd - 4096.0 : kd;
  double y = kd * kLn2Hi + (2.0 * f * s + kd * kLn2Lo);
  // Subnormal inputs are treated as zero; our inputs never come near them.
  y = x < 2.2250738585072014e-308 ? -kInf : y;
  y = x == kInf ? kInf : y;
  y = x < 0.0 ? std::numeric_limits<double>::quiet_NaN() : y;
  return y;
}

}  // namespace uc
