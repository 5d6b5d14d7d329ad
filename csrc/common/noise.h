// 1-D log-densities of every noise family (THEORY §7), shared by the CPU and CUDA kernels.
//
// Each family is a template specialisation so that the hot loops are compiled once per family
// with no switch inside them (a switch would stop vectorisation). Parameters arrive as a small
// array of doubles in the layout of the family table (families.h).
// Every function is branch-free: special values (-inf outside a support) come from selects.
// Scales are applied as x * (1 / scale): the reciprocal is hoisted out of the loops, a division
// per element is not (results differ from x / scale by at most one ulp).
#pragma once

#ifdef __CUDACC__
#define UC_HD __host__ __device__ __forceinline__
#define UC_EXP(x) ::exp(x)
#define UC_LOG(x) ::log(x)
#define UC_NEG_INF (-HUGE_VAL)  // CUDART_INF is device-only; HUGE_VAL folds on both sides
#include <cmath>
#else
#include "vecmath.h"
#define UC_HD UC_ALWAYS_INLINE
#define UC_EXP(x) uc::vexp(x)
#define UC_LOG(x) uc::vlog(x)
#define UC_NEG_INF (-uc::kInf)
#endif

#include "families.h"

namespace uc {

UC_HD double uc_abs(double x) { return x < 0.0 ? -x : x; }

// log(exp(u) + exp(v)) without overflow; both may be -inf.
UC_HD double log_add_exp(double u, double v) {
  const double hi = u > v ? u : v;
  const double lo = u > v ? v : u;
  const double r = hi + UC_LOG(1.0 + UC_EXP(lo - hi));
  return hi == UC_NEG_INF ? UC_NEG_INF : r;
}

UC_HD double general_normal_logpdf(double x, double a, double beta, double lognorm) {
  // (|x|/a)^beta via exp(beta log(.)): log(0) = -inf gives exp(-inf) = 0, as it should.
  return lognorm - UC_EXP(beta * UC_LOG(uc_abs(x) * (1.0 / a)));
}

template <int F>
struct LogPdf;

template <>
struct LogPdf<kGaussian> {
  UC_HD static double eval(double x, const double* p) {
    const double z = x * (1.0 / p[0]);
    return p[1] - 0.5 * z * z;
  }
};

template <>
struct LogPdf<kLaplace> {
  UC_HD static double eval(double x, const double* p) { return p[1] - uc_abs(x) * (1.0 / p[0]); }
};

template <>
struct LogPdf<kHyperbolicSecant> {
  // log sech(y) = -|y| - log(1 + exp(-2|y|)) + log 2, y = pi x / (2 s); log 2 lives in p[1].
  UC_HD static double eval(double x, const double* p) {
    const double y = uc_abs(x) * (1.5707963267948966 / p[0]);
    return p[1] - y - UC_LOG(1.0 + UC_EXP(-2.0 * y));
  }
};

template <>
struct LogPdf<kGeneralNormal> {
  UC_HD static double eval(double x, const double* p) {
    return general_normal_logpdf(x, p[0], p[1], p[2]);
  }
};

template <>
struct LogPdf<kUniform> {
  UC_HD static double eval(double x, const double* p) {
    return uc_abs(x) <= p[0] ? p[1] : UC_NEG_INF;
  }
};

template <>
struct LogPdf<kCauchy> {
  UC_HD static double eval(double x, const double* p) {
    return p[1] - UC_LOG(x * x + p[0] * p[0]);
  }
};

template <>
struct LogPdf<kPareto> {
  UC_HD static double eval(double x, const double* p) {
    return p[2] - (p[1] + 1.0) * UC_LOG(1.0 + uc_abs(x) * (1.0 / p[0]));
  }
};

template <>
struct LogPdf<kLaplaceGaussianMixture> {
  UC_HD static double eval(double x, const double* p) {
    const double lap = p[0] + p[3] - uc_abs(x) * (1.0 / p[2]);
    const double z = x * (1.0 / p[4]);
    const double gau = p[1] + p[5] - 0.5 * z * z;
    return log_add_exp(lap, gau);
  }
};

template <>
struct LogPdf<kExponentialMixture> {
  UC_HD static double eval(double x, const double* p) {
    const double g1 = p[0] + general_normal_logpdf(x, p[2], p[3], p[4]);
    const double g2 = p[1] + general_normal_logpdf(x, p[5], p[6], p[7]);
    return log_add_exp(g1, g2);
  }
};

// The X-side and Y-side terms of THEORY §5 for one coordinate, given log phi(x) = base:
//   a-term = log phi(x - delta) - log phi(x)      (-inf where x - delta leaves the support)
//   b-term = log phi(x) - log phi(x + delta)      (+inf where x + delta leaves the support)
// x itself lies in the support (the caller checks), so base is finite and no NaN can arise.
template <int F>
UC_HD void log_ratio_terms(double x, double delta, double base, const double* p,
                           double& a_term, double& b_term) {
  const double shifted_back = LogPdf<F>::eval(x - delta, p);
  const double shifted_fwd = LogPdf<F>::eval(x + delta, p);
  a_term = shifted_back == UC_NEG_INF ? UC_NEG_INF : shifted_back - base;
  b_term = shifted_fwd == UC_NEG_INF ? -UC_NEG_INF : base - shifted_fwd;
}

}  // namespace uc
