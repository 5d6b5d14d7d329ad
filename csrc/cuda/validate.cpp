// Argument checks of the CUDA entry points (see validate.h).
#include "validate.h"

#include <cuda_runtime_api.h>

#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

namespace uc {
namespace cuda {
namespace {

[[noreturn]] void fail(const std::string& msg) { throw std::invalid_argument(msg); }

// Indices of the kernel parameters that are scales or shapes (must be > 0), per family;
// the layout is csrc/noise.h's.
std::vector<int> positive_params(int family) {
  switch (family) {
    case kGeneralNormal: return {0, 1};
    case kPareto: return {0, 1};
    case kLaplaceGaussianMixture: return {2, 4};
    case kExponentialMixture: return {2, 3, 5, 6};
    default: return {0};
  }
}

}  // namespace

void require_count(int64_t value, int64_t max, const char* name) {
  if (value < 1 || value > max)
    fail(std::string(name) + " must lie in [1, " + std::to_string(max) + "], got " +
         std::to_string(value));
}

NoiseParams checked_params(int family, const std::vector<double>& params) {
  if (family < 0 || family >= kNumFamilies)
    fail("family id " + std::to_string(family) + " is not a compiled noise family (0.." +
         std::to_string(kNumFamilies - 1) + ")");
  if (params.size() != static_cast<size_t>(kMaxParams))
    fail("params must hold " + std::to_string(kMaxParams) +
         " float64 values (noise.kernel_params), got " + std::to_string(params.size()));
  NoiseParams out{};
  for (int k = 0; k < kMaxParams; ++k) {
    if (!std::isfinite(params[k])) fail("params must be finite (found NaN or inf)");
    out.v[k] = params[k];
  }
  for (int k : positive_params(family))
    if (!(out.v[k] > 0.0))
      fail("params[" + std::to_string(k) + "] (a scale or shape) must be > 0, got " +
           std::to_string(out.v[k]));
  const bool mixture = family == kLaplaceGaussianMixture || family == kExponentialMixture;
  if (mixture && !(out.v[0] <= 0.0 && out.v[1] <= 0.0))
    fail("params[0], params[1] (log mixture weights) must be <= 0");
  return out;
}

void require_address(uintptr_t address, size_t alignment, const char* name) {
  if (address == 0) fail(std::string(name) + " is a null pointer");
  if (address % alignment != 0)
    fail(std::string(name) + " is not aligned to " + std::to_string(alignment) + " bytes");
}

void require_device(int device) {
  const int n = device_count();
  if (device < 0 || device >= n)
    fail("device index " + std::to_string(device) + " is not a visible CUDA device (" +
         std::to_string(n) + " visible)");
}

void require_device_memory(uintptr_t address, int device, const char* name) {
  cudaPointerAttributes attr{};
  const cudaError_t err = cudaPointerGetAttributes(&attr, reinterpret_cast<const void*>(address));
  if (err != cudaSuccess) {
    cudaGetLastError();
    fail(std::string(name) + " is not a CUDA pointer (" + cudaGetErrorString(err) + ")");
  }
  if (attr.type == cudaMemoryTypeManaged) return;
  if (attr.type != cudaMemoryTypeDevice)
    fail(std::string(name) +
         " must point to CUDA device memory (got host memory: pass a CUDA tensor)");
  if (attr.device != device)
    fail(std::string(name) + " lives on device " + std::to_string(attr.device) +
         " but the kernel runs on device " + std::to_string(device));
}

}  // namespace cuda
}  // namespace uc
