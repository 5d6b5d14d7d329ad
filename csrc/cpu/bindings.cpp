// Python bindings of the CPU kernels (module unicr_fast._cpu).
//
// Arrays arrive as NumPy views of torch tensors (zero copy). Everything is validated here
// again, whatever Python checked: a bad call raises ValueError/TypeError, never crashes. The
// array layout (dtype, dimensions, strides) and values only the host can read are checked
// here; sizes, family parameters and scalars by the checks the CUDA bindings share
// (common/checks.h).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cmath>
#include <limits>
#include <string>
#include <utility>

#include "../common/checks.h"
#include "kernels.h"
#include "parallel.h"

namespace py = pybind11;

namespace {

using F64Array = py::array_t<double, py::array::c_style>;

[[noreturn]] void value_error(const std::string& msg) { throw py::value_error(msg); }
[[noreturn]] void type_error(const std::string& msg) { throw py::type_error(msg); }

void require_c_contiguous(const py::array& arr, const char* name) {
  if (!(arr.flags() & py::array::c_style))
    value_error(std::string(name) + " must be C-contiguous (call .contiguous() first)");
}

void require_2d(const py::array& arr, const char* name) {
  if (arr.ndim() != 2)
    value_error(std::string(name) + " must be 2-D, got " + std::to_string(arr.ndim()) + "-D");
}

void require_float64(const py::array& arr, const char* name) {
  if (!arr.dtype().is(py::dtype::of<double>()))
    type_error(std::string(name) + " must be float64");
}

void require_finite(const double* p, int64_t n, const char* name) {
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(p[i])) value_error(std::string(name) + " must be finite (found NaN/inf)");
}

// The family id and its kernel parameter array (common/families.h), checked; returns the data.
const double* checked_family_params(int family, const py::array& params) {
  require_c_contiguous(params, "params");
  require_float64(params, "params");
  if (params.ndim() != 1) value_error("params must be a 1-D float64 array");
  const double* prm = static_cast<const double*>(params.data());
  uc::check_family_params(family, prm, static_cast<size_t>(params.shape(0)));
  return prm;
}

int checked_threads(int num_threads) {
  if (num_threads < 0) value_error("num_threads must be >= 0 (0 = all cores)");
  return num_threads == 0 ? uc::default_num_threads() : num_threads;
}

// The sample matrix and shifts of a log-ratio call, checked.
struct SamplesAndShifts {
  bool eps_double;
  int64_t N, d, M, row_stride;
  const double* shifts;
};

SamplesAndShifts checked_samples_and_shifts(const py::array& eps, const py::array& shifts) {
  require_2d(eps, "eps");
  require_2d(shifts, "shifts");
  require_c_contiguous(shifts, "shifts");
  const bool eps_double = eps.dtype().is(py::dtype::of<double>());
  if (!eps_double && !eps.dtype().is(py::dtype::of<float>()))
    type_error("eps must be float32 or float64");
  require_float64(shifts, "shifts");
  const int64_t N = eps.shape(0), d = eps.shape(1), M = shifts.shape(0);
  uc::check_log_ratio_sizes(N, d, M);
  // Rows must be contiguous; the row stride may exceed d (a column prefix of a wider matrix).
  const int64_t item = eps.itemsize();
  if (eps.strides(1) != item || eps.strides(0) < d * item || eps.strides(0) % item != 0)
    value_error("eps must have contiguous rows (stride 1 along the last dimension, rows not overlapping)");
  if (shifts.shape(1) != d)
    value_error("shifts has " + std::to_string(shifts.shape(1)) + " coordinates but eps has " +
                std::to_string(d));
  const double* sh = static_cast<const double*>(shifts.data());
  require_finite(sh, M * d, "shifts");
  return {eps_double, N, d, M, eps.strides(0) / item, sh};
}

py::tuple log_ratio(const py::array& eps, const py::array& shifts, int family,
                    const py::array& params, int num_threads) {
  const SamplesAndShifts in = checked_samples_and_shifts(eps, shifts);
  const double* prm = checked_family_params(family, params);
  F64Array a({in.M, in.N}), b({in.M, in.N});
  uc::LogRatioArgs args{eps.data(), in.eps_double, false, 0, in.N, in.d, in.row_stride,
                        in.shifts, in.M, family, prm, a.mutable_data(), b.mutable_data(),
                        checked_threads(num_threads)};
  {
    py::gil_scoped_release release;
    uc::log_ratio(args);
  }
  return py::make_tuple(a, b);
}

py::tuple log_ratio_philox(int family, const py::array& params, uint64_t seed,
                           int64_t num_samples, int64_t dim, const py::array& shifts, bool single,
                           int num_threads) {
  const double* prm = checked_family_params(family, params);
  require_2d(shifts, "shifts");
  require_c_contiguous(shifts, "shifts");
  require_float64(shifts, "shifts");
  const int64_t M = shifts.shape(0);
  uc::check_log_ratio_sizes(num_samples, dim, M);
  if (shifts.shape(1) != dim)
    value_error("shifts has " + std::to_string(shifts.shape(1)) + " coordinates but dim is " +
                std::to_string(dim));
  const double* sh = static_cast<const double*>(shifts.data());
  require_finite(sh, M * dim, "shifts");
  F64Array a({M, num_samples}), b({M, num_samples});
  uc::LogRatioArgs args{nullptr, !single, true, seed, num_samples, dim, dim, sh, M, family, prm,
                        a.mutable_data(), b.mutable_data(), checked_threads(num_threads)};
  {
    py::gil_scoped_release release;
    uc::log_ratio(args);
  }
  return py::make_tuple(a, b);
}

py::tuple log_ratio_radial(const py::array& eps, const py::array& shifts, const py::array& tail,
                           double q, double beta, double scale, int num_threads) {
  const SamplesAndShifts in = checked_samples_and_shifts(eps, shifts);
  require_c_contiguous(tail, "tail");
  require_float64(tail, "tail");
  if (tail.ndim() != 1 || tail.shape(0) != in.N)
    value_error("tail must be a 1-D float64 array with one entry per sample (" +
                std::to_string(in.N) + ")");
  const double* tl = static_cast<const double*>(tail.data());
  require_finite(tl, in.N, "tail");
  for (int64_t i = 0; i < in.N; ++i)
    if (tl[i] < 0.0) value_error("tail must be >= 0 (a sum of |w|^q or a max of |w|)");
  uc::check_radial_params(q, beta, scale);
  F64Array a({in.M, in.N}), b({in.M, in.N});
  uc::RadialArgs args{eps.data(), in.eps_double, in.N, in.d, in.row_stride, in.shifts, in.M, tl,
                      q, beta, scale, a.mutable_data(), b.mutable_data(),
                      checked_threads(num_threads)};
  {
    py::gil_scoped_release release;
    uc::log_ratio_radial(args);
  }
  return py::make_tuple(a, b);
}

// Checks shared by the statistics kernels (a, b: M x N float64 log-ratios, one p_a and p_b per
// row); returns (M, N).
std::pair<int64_t, int64_t> checked_stats_args(const py::array& a, const py::array& b,
                                               const py::array& p_a, const py::array& p_b,
                                               double tie_rtol) {
  require_2d(a, "a");
  require_2d(b, "b");
  require_c_contiguous(a, "a");
  require_c_contiguous(b, "b");
  require_c_contiguous(p_a, "p_a");
  require_c_contiguous(p_b, "p_b");
  require_float64(a, "a");
  require_float64(b, "b");
  require_float64(p_a, "p_a");
  require_float64(p_b, "p_b");
  const int64_t M = a.shape(0), N = a.shape(1);
  uc::check_stats_sizes(M, N);
  if (b.shape(0) != M || b.shape(1) != N) value_error("b must have the shape of a");
  if (p_a.ndim() != 1 || p_a.shape(0) != M || p_b.ndim() != 1 || p_b.shape(0) != M)
    value_error("p_a and p_b must be 1-D with one entry per row of a");
  const double* pa = static_cast<const double*>(p_a.data());
  const double* pb = static_cast<const double*>(p_b.data());
  for (int64_t m = 0; m < M; ++m) {
    if (!(pa[m] > 0.0 && pa[m] <= 1.0)) value_error("p_a must lie in (0, 1]");
    if (!(pb[m] >= 0.0 && pb[m] <= 1.0)) value_error("p_b must lie in [0, 1]");
  }
  uc::check_tie_rtol(tie_rtol);
  const double* av = static_cast<const double*>(a.data());
  for (int64_t i = 0; i < M * N; ++i)
    if (std::isnan(av[i]) || av[i] == std::numeric_limits<double>::infinity())
      value_error("a (X-side log-ratios) must not hold NaN or +inf");
  const double* bv = static_cast<const double*>(b.data());
  for (int64_t i = 0; i < M * N; ++i)
    if (std::isnan(bv[i])) value_error("b (Y-side log-ratios) must not hold NaN");
  return {M, N};
}

using StatsKernel = void (*)(const double*, const double*, int64_t, int64_t, const double*,
                             const double*, double, double*, int);

F64Array run_stats(StatsKernel kernel, int num_stats, const py::array& a, const py::array& b,
                   const py::array& p_a, const py::array& p_b, double tie_rtol, int num_threads) {
  const auto [M, N] = checked_stats_args(a, b, p_a, p_b, tie_rtol);
  F64Array stats({M, static_cast<int64_t>(num_stats)});
  const int threads = checked_threads(num_threads);
  {
    py::gil_scoped_release release;
    kernel(static_cast<const double*>(a.data()), static_cast<const double*>(b.data()), M, N,
           static_cast<const double*>(p_a.data()), static_cast<const double*>(p_b.data()),
           tie_rtol, stats.mutable_data(), threads);
  }
  return stats;
}

F64Array threshold_stats(const py::array& a, const py::array& b, const py::array& p_a,
                         const py::array& p_b, double tie_rtol, int num_threads) {
  return run_stats(&uc::threshold_stats, uc::kNumStats, a, b, p_a, p_b, tie_rtol, num_threads);
}

F64Array pooled_stats(const py::array& a, const py::array& b, const py::array& p_a,
                      const py::array& p_b, double tie_rtol, int num_threads) {
  return run_stats(&uc::pooled_stats, uc::kNumPooledStats, a, b, p_a, p_b, tie_rtol,
                   num_threads);
}

py::array sample(int family, const py::array& params, uint64_t seed, int64_t num_samples,
                 int64_t dim, bool single, int num_threads) {
  const double* prm = checked_family_params(family, params);
  uc::check_sample_sizes(num_samples, dim);
  py::array out = single ? py::array(py::array_t<float>({num_samples, dim}))
                         : py::array(py::array_t<double>({num_samples, dim}));
  const int threads = checked_threads(num_threads);
  void* ptr = out.mutable_data();
  {
    py::gil_scoped_release release;
    uc::sample(family, prm, seed, num_samples, dim, ptr, single, threads);
  }
  return out;
}

}  // namespace

PYBIND11_MODULE(_cpu, m) {
  m.doc() = "unicr_fast CPU kernels (log-ratio sums, radial log-ratios, tie-aware threshold statistics)";
  m.def("log_ratio", &log_ratio, py::arg("eps"), py::arg("shifts"), py::arg("family"),
        py::arg("params"), py::arg("num_threads") = 0,
        "X-side and Y-side log-ratio sums (THEORY §5); returns (a, b), each M x N float64.");
  m.def("log_ratio_philox", &log_ratio_philox, py::arg("family"), py::arg("params"),
        py::arg("seed"), py::arg("num_samples"), py::arg("dim"), py::arg("shifts"),
        py::arg("single"), py::arg("num_threads") = 0,
        "log_ratio on the draws sample(seed) would return, regenerated row by row (never stored).");
  m.def("log_ratio_radial", &log_ratio_radial, py::arg("eps"), py::arg("shifts"), py::arg("tail"),
        py::arg("q"), py::arg("beta"), py::arg("scale"), py::arg("num_threads") = 0,
        "Radial-noise log-ratios (csrc/common/radial.h) with per-sample tail statistics; "
        "(a, b), M x N.");
  m.def("threshold_stats", &threshold_stats, py::arg("a"), py::arg("b"), py::arg("p_a"),
        py::arg("p_b"), py::arg("tie_rtol"), py::arg("num_threads") = 0,
        "Tie-aware threshold statistics (THEORY §3); returns M x 8 float64.");
  m.def("pooled_stats", &pooled_stats, py::arg("a"), py::arg("b"), py::arg("p_a"),
        py::arg("p_b"), py::arg("tie_rtol"), py::arg("num_threads") = 0,
        "Pooled worst-case probabilities t_A, P_Y(S_A), t_B, P_Y(S_B) (docs/theory.md §5); M x 4.");
  m.def("sample", &sample, py::arg("family"), py::arg("params"), py::arg("seed"),
        py::arg("num_samples"), py::arg("dim"), py::arg("single"), py::arg("num_threads") = 0,
        "Philox noise draws, N x d, float32 if single else float64 (same stream as the GPU).");
  m.def("quantile_rank", &uc::quantile_rank, py::arg("p"), py::arg("n"), py::arg("lo"));
  m.attr("num_stats") = uc::kNumStats;
  m.attr("num_pooled_stats") = uc::kNumPooledStats;
  m.attr("max_params") = uc::kMaxParams;
  m.attr("default_num_threads") = uc::default_num_threads();
}
