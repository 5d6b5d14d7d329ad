// Argument checks both bindings (cpu/bindings.cpp, cuda/bindings.cpp) run before a kernel sees
// an argument, so that no call from Python can crash the process: the kernels trust what passes
// here. Every failure throws std::invalid_argument (pybind11 raises ValueError) naming the
// argument. Host-only: the kernels never include it.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <stdexcept>
#include <string>

#include "families.h"

namespace uc {

// Coordinates index a 32-bit word of the Philox counter (philox.h) and the CUDA kernels' lanes.
constexpr int64_t kMaxDim = INT32_MAX;
// Bound on element counts (N d, M d, M N): keeps every byte offset far from int64 overflow.
constexpr int64_t kMaxElements = int64_t(1) << 60;
// Samples per row of the statistics kernels: the GPU's radix histograms count in 32 bits, and
// quantile_rank's rounding guard (cpu/threshold_stats.cpp) needs N < 2^31.
constexpr int64_t kMaxStatsSamples = INT32_MAX;

[[noreturn]] inline void argument_error(const std::string& msg) {
  throw std::invalid_argument(msg);
}

// %.17g: std::to_string(double) would print 1e-300 as 0.000000.
inline std::string number_text(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

// ---- Memory safety: counts, element counts, addresses.

// 1 <= value <= max.
inline void require_count(int64_t value, int64_t max, const char* name) {
  if (value < 1)
    argument_error(std::string(name) + " must be at least one, got " + std::to_string(value));
  if (value > max)
    argument_error(std::string(name) + " must be at most " + std::to_string(max) + ", got " +
                   std::to_string(value));
}

inline void require_dim(int64_t dim) {
  if (dim > kMaxDim)
    argument_error("dim must be below 2^31 (a coordinate is one 32-bit word of the Philox "
                   "counter), got " + std::to_string(dim));
  require_count(dim, kMaxDim, "dim");
}

// rows x cols (both already >= 1) within kMaxElements, tested without forming the product.
inline void require_elements(int64_t rows, int64_t cols, const char* what) {
  if (rows > kMaxElements / cols)
    argument_error(std::string(what) + " has more than 2^60 elements");
}

// A non-null address aligned for its element type.
inline void require_address(uintptr_t address, size_t alignment, const char* name) {
  if (address == 0) argument_error(std::string(name) + " is a null pointer");
  if (address % alignment != 0)
    argument_error(std::string(name) + " is not aligned to " + std::to_string(alignment) +
                   " bytes");
}

// A log-ratio call: N samples of d coordinates, M shifts of d, outputs a and b of M x N.
inline void check_log_ratio_sizes(int64_t N, int64_t d, int64_t M) {
  require_count(N, kMaxElements, "num_samples");
  require_dim(d);
  require_count(M, kMaxElements, "num_shifts");
  require_elements(N, d, "eps (num_samples x dim)");
  require_elements(M, d, "shifts (num_shifts x dim)");
  require_elements(M, N, "a and b (num_shifts x num_samples)");
}

// A sampler call: N x d draws.
inline void check_sample_sizes(int64_t N, int64_t d) {
  require_count(N, kMaxElements, "num_samples");
  require_dim(d);
  require_elements(N, d, "the sample (num_samples x dim)");
}

// A statistics call: M rows of N log-ratios each in a and b.
inline void check_stats_sizes(int64_t M, int64_t N) {
  require_count(M, kMaxElements, "num_rows");
  require_count(N, kMaxStatsSamples, "num_samples");
  require_elements(M, N, "a and b (num_rows x num_samples)");
}

// ---- Values the kernels rely on.

// The one validation of a family id and its kernel parameters (count doubles at params)
// against the family table: all finite, each entry what its role requires, unread entries 0.
inline void check_family_params(int family, const double* params, size_t count) {
  if (family < 0 || family >= kNumFamilies)
    argument_error("family id " + std::to_string(family) + " is not a compiled noise family (0.." +
                   std::to_string(kNumFamilies - 1) + ")");
  if (count != static_cast<size_t>(kMaxParams))
    argument_error("params must hold " + std::to_string(kMaxParams) +
                   " float64 values (noise.kernel_params), got " + std::to_string(count));
  for (int k = 0; k < kMaxParams; ++k)
    if (!std::isfinite(params[k])) argument_error("params must be finite (found NaN or inf)");
  const FamilySpec& spec = kFamilies[family];
  for (int k = 0; k < kMaxParams; ++k) {
    const double v = params[k];
    const ParamSpec& p = spec.params[k];
    const char* rule = p.role == kPositive && !(v > 0.0)    ? " must be > 0"
                       : p.role == kLogWeight && !(v <= 0.0) ? " must be <= 0 (a log weight)"
                       : p.role == kUnused && v != 0.0      ? " must be 0"
                                                            : nullptr;
    if (rule) {
      const std::string what = p.role == kUnused ? "unused by " : std::string(p.name) + " of ";
      argument_error("params[" + std::to_string(k) + "] (" + what + spec.name + ")" + rule +
                     ", got " + number_text(v));
    }
  }
}

// Radial noise's shape (radial.h): q > 0 (inf allowed), beta and the scale finite and > 0.
inline void check_radial_params(double q, double beta, double scale) {
  if (!(q > 0.0)) argument_error("q must be > 0 (inf allowed)");
  if (!(beta > 0.0) || !std::isfinite(beta)) argument_error("beta must be finite and > 0");
  if (!(scale > 0.0) || !std::isfinite(scale)) argument_error("scale must be finite and > 0");
}

inline void check_tie_rtol(double tie_rtol) {
  if (!(tie_rtol >= 0.0) || !std::isfinite(tie_rtol))
    argument_error("tie_rtol must be finite and >= 0, got " + number_text(tie_rtol));
}

}  // namespace uc
