// Noise sampling from the Philox stream of one coordinate (THEORY §7), host+device.
//
// Draw<F>::eval(stream, k, params) returns one draw of family F using Philox blocks k, k+1, ...
// of the stream; params has the layout of the family table (families.h). The sampler kernel,
// the fused log-ratio kernel and the host reference all call these functions, so they agree on
// every sample (up to the last ulp of the host/device math libraries for the host reference).
#pragma once

#include <cfloat>
#include <cmath>

#include "noise.h"
#include "philox.h"

namespace uc {

constexpr double kPi = 3.141592653589793;

// sin(pi x) and cos(pi x) for |x| <= 1/2 (sin_pi) and 0 <= |x| <= 2 (cos_pi), the ranges the
// samplers use. On the device sinpi/cospi reduce the argument exactly, which keeps the tails of
// the tan-based samplers (Cauchy, hyperbolic secant) accurate. The host reference gets the same
// accuracy from cos(pi r) = sin(pi (1/2 - r)), where 1/2 - r is exact for the r that matter.
UC_HD double sin_pi(double x) {
#ifdef __CUDA_ARCH__
  return ::sinpi(x);
#else
  return ::sin(kPi * x);
#endif
}

UC_HD double cos_pi(double x) {
#ifdef __CUDA_ARCH__
  return ::cospi(x);
#else
  double r = ::fabs(x);
  if (r > 1.0) r = 2.0 - r;  // cos(pi x) = cos(pi (2 - |x|)), exact by Sterbenz
  return ::sin(kPi * (0.5 - r));
#endif
}

UC_HD double with_sign(double x, uint32_t bits) { return (bits & 1u) ? -x : x; }

// Box–Muller with the radius from 52 bits (tails out to 8.6 sigma) and a given angle uniform.
UC_HD double std_normal(uint32_t hi, uint32_t lo, double angle_u) {
  return ::sqrt(-2.0 * ::log(uniform52(hi, lo))) * cos_pi(2.0 * angle_u);
}

UC_HD double gaussian_draw(const CoordinateStream& s, uint32_t k, double scale) {
  const Words4 r = s.block(k);
  return scale * std_normal(r.w[0], r.w[1], uniform52(r.w[2], r.w[3]));
}

UC_HD double laplace_draw(const CoordinateStream& s, uint32_t k, double b) {
  const Words4 r = s.block(k);
  return with_sign(-b * ::log(uniform52(r.w[0], r.w[1])), r.w[2]);
}

// Marsaglia & Tsang (2000) needs at most a few trials (acceptance >= 95% for shape >= 1); a
// fixed budget keeps the counter space of a coordinate bounded. All 16 fail with probability
// < 1e-20, and then the proposal's mode-like centre d is returned.
constexpr uint32_t kGammaTrials = 16;

// log of a Gamma(shape, 1) draw for shape >= 1, using blocks k .. k + kGammaTrials - 1.
UC_HD double log_gamma_draw(const CoordinateStream& s, uint32_t k, double shape) {
  const double d = shape - 1.0 / 3.0;
  const double c = 1.0 / ::sqrt(9.0 * d);
  for (uint32_t t = 0; t < kGammaTrials; ++t) {
    const Words4 r = s.block(k + t);
    const double z = std_normal(r.w[0], r.w[1], uniform32(r.w[2]));
    const double v1 = 1.0 + c * z;
    if (v1 <= 0.0) continue;
    const double v = v1 * v1 * v1;
    const double u = uniform32(r.w[3]);
    const double z2 = z * z;
    if (u < 1.0 - 0.0331 * z2 * z2 || ::log(u) < 0.5 * z2 + d * (1.0 - v + ::log(v)))
      return ::log(d) + 3.0 * ::log(v1);
  }
  return ::log(d);
}

// General normal: |X| / a = G^(1/beta) with G ~ Gamma(1/beta). For 1/beta < 1 the boost
// G = G' U^beta (G' ~ Gamma(1/beta + 1)) gives |X| = a G'^(1/beta) U, worked in logs so that
// large beta cannot underflow. Block k holds the sign and U; the gamma trials follow.
UC_HD double general_normal_draw(const CoordinateStream& s, uint32_t k, double a, double beta) {
  const Words4 r = s.block(k);
  const double shape = 1.0 / beta;
  const bool boost = shape < 1.0;
  double log_mag = log_gamma_draw(s, k + 1, boost ? shape + 1.0 : shape) / beta;
  if (boost) log_mag += ::log(uniform52(r.w[2], r.w[3]));
  return with_sign(a * ::exp(log_mag), r.w[0]);
}

template <int F>
struct Draw;

template <>
struct Draw<kGaussian> {
  UC_HD static double eval(const CoordinateStream& s, uint32_t k, const double* p) {
    return gaussian_draw(s, k, p[0]);
  }
};

template <>
struct Draw<kLaplace> {
  UC_HD static double eval(const CoordinateStream& s, uint32_t k, const double* p) {
    return laplace_draw(s, k, p[0]);
  }
};

template <>
struct Draw<kHyperbolicSecant> {
  // Inverse CDF: x = (2 s / pi) log tan(pi u / 2).
  UC_HD static double eval(const CoordinateStream& s, uint32_t k, const double* p) {
    const Words4 r = s.block(k);
    const double h = 0.5 * uniform52(r.w[0], r.w[1]);
    return (2.0 * p[0] / kPi) * ::log(sin_pi(h) / cos_pi(h));
  }
};

template <>
struct Draw<kGeneralNormal> {
  UC_HD static double eval(const CoordinateStream& s, uint32_t k, const double* p) {
    return general_normal_draw(s, k, p[0], p[1]);
  }
};

template <>
struct Draw<kUniform> {
  // |2u - 1| <= 1 - 2^-53 exactly, so the draw never leaves [-l, l].
  UC_HD static double eval(const CoordinateStream& s, uint32_t k, const double* p) {
    const Words4 r = s.block(k);
    return (2.0 * uniform52(r.w[0], r.w[1]) - 1.0) * p[0];
  }
};

template <>
struct Draw<kCauchy> {
  // Inverse CDF: x = g tan(pi (u - 1/2)); u - 1/2 is exact.
  UC_HD static double eval(const CoordinateStream& s, uint32_t k, const double* p) {
    const Words4 r = s.block(k);
    const double v = uniform52(r.w[0], r.w[1]) - 0.5;
    return p[0] * (sin_pi(v) / cos_pi(v));
  }
};

template <>
struct Draw<kPareto> {
  // Lomax magnitude s (u^(-1/a) - 1), via expm1 so small magnitudes keep their precision.
  UC_HD static double eval(const CoordinateStream& s, uint32_t k, const double* p) {
    const Words4 r = s.block(k);
    return with_sign(p[0] * ::expm1(-::log(uniform52(r.w[0], r.w[1])) / p[1]), r.w[2]);
  }
};

// Mixtures: block k picks the component (u < w, w = exp(log w)); it draws from block k + 1.
template <>
struct Draw<kLaplaceGaussianMixture> {
  UC_HD static double eval(const CoordinateStream& s, uint32_t k, const double* p) {
    const Words4 r = s.block(k);
    return uniform52(r.w[0], r.w[1]) < ::exp(p[0]) ? laplace_draw(s, k + 1, p[2])
                                                   : gaussian_draw(s, k + 1, p[4]);
  }
};

template <>
struct Draw<kExponentialMixture> {
  UC_HD static double eval(const CoordinateStream& s, uint32_t k, const double* p) {
    const Words4 r = s.block(k);
    return uniform52(r.w[0], r.w[1]) < ::exp(p[0]) ? general_normal_draw(s, k + 1, p[2], p[3])
                                                   : general_normal_draw(s, k + 1, p[5], p[6]);
  }
};

// Half-width of the support: finite only for uniform noise.
template <int F>
UC_HD double support_bound(const double* p) {
  return F == kUniform ? p[0] : HUGE_VAL;
}

// A draw as stored in the requested precision, read back as double. Rounding to float32
// may cross the support edge of uniform noise (step back one float) or overflow (saturate):
// either would put the sample outside the support, where log-ratios are undefined.
UC_HD double to_sample_precision(double x, bool single, double bound) {
  if (!single) return ::fabs(x) <= DBL_MAX ? x : ::copysign(DBL_MAX, x);
  float f = static_cast<float>(x);
  if (!(::fabsf(f) <= FLT_MAX)) f = ::copysignf(FLT_MAX, f);
  if (::fabs(static_cast<double>(f)) > bound) f = ::nextafterf(f, 0.0f);
  return static_cast<double>(f);
}

// Sample i, coordinate j of family F, as the sampler stores it (float32 when single).
template <int F>
UC_HD double draw_sample(uint64_t seed, uint64_t i, uint32_t j, const double* p, bool single) {
  const CoordinateStream s(seed, i, j);
  return to_sample_precision(Draw<F>::eval(s, 0, p), single, support_bound<F>(p));
}

}  // namespace uc
