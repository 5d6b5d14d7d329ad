// Python bindings of the CUDA module (unicr_fast._cuda).
//
// Python passes raw device addresses (tensor.data_ptr()), shapes, dtype codes, the device
// index and the stream (torch.cuda.current_stream().cuda_stream): the module never links
// libtorch, so one build works with any torch. Every argument is validated before anything is
// enqueued, first by the host-side checks the CPU bindings share (common/checks.h), then against
// the driver (validate.h); kernels then run asynchronously on that stream.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "../common/checks.h"
#include "../common/philox.h"
#include "cuda_api.h"
#include "validate.h"

namespace py = pybind11;
namespace ucc = uc::cuda;

namespace {

constexpr int kFloat32 = 0, kFloat64 = 1;

bool dtype_is_double(int code, const char* name) {
  if (code != kFloat32 && code != kFloat64)
    uc::argument_error(std::string(name) + " must be 0 (float32) or 1 (float64), got " +
                       std::to_string(code));
  return code == kFloat64;
}

struct Buffer {
  uintptr_t address;
  size_t alignment;
  const char* name;
};

// Host-side checks of every buffer first, then the device, then where each buffer lives.
void check_buffers(std::initializer_list<Buffer> buffers, int device) {
  for (const Buffer& buf : buffers) uc::require_address(buf.address, buf.alignment, buf.name);
  ucc::require_device(device);
  for (const Buffer& buf : buffers) ucc::require_device_memory(buf.address, device, buf.name);
}

// The family id and its parameters, checked, in the by-value form the kernels take.
ucc::NoiseParams checked_params(int family, const std::vector<double>& params) {
  uc::check_family_params(family, params.data(), params.size());
  ucc::NoiseParams out{};
  std::copy(params.begin(), params.end(), out.v);
  return out;
}

ucc::LogRatioProblem log_ratio_problem(int64_t N, int64_t d, uintptr_t shifts, int64_t M,
                                       int family, const std::vector<double>& params,
                                       uintptr_t a, uintptr_t b, int device, uintptr_t stream) {
  uc::check_log_ratio_sizes(N, d, M);
  const ucc::NoiseParams p = checked_params(family, params);
  return ucc::LogRatioProblem{N, d, reinterpret_cast<const double*>(shifts), M, family, p,
                              reinterpret_cast<double*>(a), reinterpret_cast<double*>(b),
                              ucc::Launch{device, reinterpret_cast<void*>(stream)}};
}

void log_ratio(uintptr_t eps, int eps_dtype, int64_t N, int64_t d, uintptr_t shifts, int64_t M,
               int family, const std::vector<double>& params, uintptr_t a, uintptr_t b,
               int device, uintptr_t stream) {
  const bool dbl = dtype_is_double(eps_dtype, "eps_dtype");
  const auto pr = log_ratio_problem(N, d, shifts, M, family, params, a, b, device, stream);
  check_buffers({{eps, dbl ? 8u : 4u, "eps"}, {shifts, 8, "shifts"}, {a, 8, "a"}, {b, 8, "b"}},
                device);
  ucc::log_ratio(pr, reinterpret_cast<const void*>(eps), dbl);
}

void log_ratio_philox(uint64_t seed, int sample_dtype, int64_t N, int64_t d, uintptr_t shifts,
                      int64_t M, int family, const std::vector<double>& params, uintptr_t a,
                      uintptr_t b, int device, uintptr_t stream) {
  const bool dbl = dtype_is_double(sample_dtype, "sample_dtype");
  const auto pr = log_ratio_problem(N, d, shifts, M, family, params, a, b, device, stream);
  check_buffers({{shifts, 8, "shifts"}, {a, 8, "a"}, {b, 8, "b"}}, device);
  ucc::log_ratio_philox(pr, seed, !dbl);
}

void log_ratio_radial(uintptr_t eps, int eps_dtype, int64_t N, int64_t d, uintptr_t shifts,
                      int64_t M, uintptr_t tail, double q, double beta, double scale, uintptr_t a,
                      uintptr_t b, int device, uintptr_t stream) {
  const bool dbl = dtype_is_double(eps_dtype, "eps_dtype");
  uc::check_log_ratio_sizes(N, d, M);
  uc::check_radial_params(q, beta, scale);
  check_buffers({{eps, dbl ? 8u : 4u, "eps"}, {shifts, 8, "shifts"}, {tail, 8, "tail"},
                 {a, 8, "a"}, {b, 8, "b"}},
                device);
  const ucc::RadialProblem pr{N, d, reinterpret_cast<const double*>(shifts), M,
                              reinterpret_cast<const double*>(tail), q, beta, scale,
                              reinterpret_cast<double*>(a), reinterpret_cast<double*>(b),
                              ucc::Launch{device, reinterpret_cast<void*>(stream)}};
  ucc::log_ratio_radial(pr, reinterpret_cast<const void*>(eps), dbl);
}

ucc::SampleRequest sample_request(int family, const std::vector<double>& params, uint64_t seed,
                                  int64_t N, int64_t d, uintptr_t out, bool dbl) {
  uc::check_sample_sizes(N, d);
  return ucc::SampleRequest{family, checked_params(family, params), seed, N, d,
                            reinterpret_cast<void*>(out), !dbl};
}

void sample(int family, const std::vector<double>& params, uint64_t seed, int64_t N, int64_t d,
            uintptr_t out, int dtype, int device, uintptr_t stream) {
  const bool dbl = dtype_is_double(dtype, "dtype");
  const auto req = sample_request(family, params, seed, N, d, out, dbl);
  check_buffers({{out, dbl ? 8u : 4u, "out"}}, device);
  ucc::sample(req, ucc::Launch{device, reinterpret_cast<void*>(stream)});
}

py::array_t<double> sample_host(int family, const std::vector<double>& params, uint64_t seed,
                                int64_t N, int64_t d, int dtype) {
  const bool dbl = dtype_is_double(dtype, "dtype");
  uc::check_sample_sizes(N, d);  // before allocating
  py::array_t<double> out({N, d});
  const auto req = sample_request(family, params, seed, N, d,
                                  reinterpret_cast<uintptr_t>(out.mutable_data()), dbl);
  py::gil_scoped_release release;
  ucc::sample_host(req);
  return out;
}

void threshold_stats(uintptr_t a, uintptr_t b, int64_t M, int64_t N, uintptr_t p_a,
                     uintptr_t p_b, double tie_rtol, uintptr_t stats, int device,
                     uintptr_t stream) {
  uc::check_stats_sizes(M, N);
  uc::check_tie_rtol(tie_rtol);
  check_buffers({{a, 8, "a"}, {b, 8, "b"}, {p_a, 8, "p_a"}, {p_b, 8, "p_b"}, {stats, 8, "stats"}},
                device);
  ucc::threshold_stats(
      ucc::ThresholdProblem{reinterpret_cast<const double*>(a), reinterpret_cast<const double*>(b),
                            M, N, reinterpret_cast<const double*>(p_a),
                            reinterpret_cast<const double*>(p_b), tie_rtol,
                            reinterpret_cast<double*>(stats)},
      ucc::Launch{device, reinterpret_cast<void*>(stream)});
}

py::tuple philox4x32_10(std::array<uint32_t, 4> counter, std::array<uint32_t, 2> key) {
  const uc::Words4 r = uc::philox4x32_10(
      uc::Words4{{counter[0], counter[1], counter[2], counter[3]}}, key[0], key[1]);
  return py::make_tuple(r.w[0], r.w[1], r.w[2], r.w[3]);
}

}  // namespace

PYBIND11_MODULE(_cuda, m) {
  m.doc() = "unicr_fast CUDA kernels: log-ratio sums (stored or Philox-regenerated noise), "
            "the Philox noise sampler, tie-aware threshold statistics. Pointers are device "
            "addresses; every kernel is enqueued on the given stream.";
  m.def("device_count", &ucc::device_count, "Number of usable CUDA devices (0 without a driver).");
  m.def("log_ratio", &log_ratio, py::arg("eps"), py::arg("eps_dtype"), py::arg("num_samples"),
        py::arg("dim"), py::arg("shifts"), py::arg("num_shifts"), py::arg("family"),
        py::arg("params"), py::arg("a"), py::arg("b"), py::arg("device"), py::arg("stream"),
        "a, b (M x N float64) from stored eps (N x d) and shifts (M x d float64), THEORY §5.");
  m.def("log_ratio_philox", &log_ratio_philox, py::arg("seed"), py::arg("sample_dtype"),
        py::arg("num_samples"), py::arg("dim"), py::arg("shifts"), py::arg("num_shifts"),
        py::arg("family"), py::arg("params"), py::arg("a"), py::arg("b"), py::arg("device"),
        py::arg("stream"),
        "log_ratio on the eps that sample(seed, sample_dtype) returns, regenerated in the kernel.");
  m.def("log_ratio_radial", &log_ratio_radial, py::arg("eps"), py::arg("eps_dtype"),
        py::arg("num_samples"), py::arg("dim"), py::arg("shifts"), py::arg("num_shifts"),
        py::arg("tail"), py::arg("q"), py::arg("beta"), py::arg("scale"), py::arg("a"),
        py::arg("b"), py::arg("device"), py::arg("stream"),
        "Radial-noise log-ratios (csrc/common/radial.h) with per-sample tail statistics.");
  m.def("sample", &sample, py::arg("family"), py::arg("params"), py::arg("seed"),
        py::arg("num_samples"), py::arg("dim"), py::arg("out"), py::arg("dtype"), py::arg("device"),
        py::arg("stream"), "Philox i.i.d. noise draws into out (num_samples x dim).");
  m.def("sample_host", &sample_host, py::arg("family"), py::arg("params"), py::arg("seed"),
        py::arg("num_samples"), py::arg("dim"), py::arg("dtype") = kFloat64,
        "Host reference of sample(): the same Philox draws as a float64 NumPy array.");
  m.def("threshold_stats", &threshold_stats, py::arg("a"), py::arg("b"), py::arg("num_rows"),
        py::arg("num_samples"), py::arg("p_a"), py::arg("p_b"), py::arg("tie_rtol"),
        py::arg("stats"), py::arg("device"), py::arg("stream"),
        "Tie-aware threshold statistics (THEORY §3) into stats (num_rows x 8 float64).");
  m.def("philox4x32_10", &philox4x32_10, py::arg("counter"), py::arg("key"),
        "The Philox4x32-10 block function (for known-answer tests).");
  m.attr("FLOAT32") = kFloat32;
  m.attr("FLOAT64") = kFloat64;
  m.attr("num_stats") = 8;
  m.attr("max_params") = uc::kMaxParams;
}
