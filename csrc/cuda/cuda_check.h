// CUDA runtime error handling shared by the launchers: every call is checked, and a failure
// becomes std::runtime_error (Python RuntimeError) naming the call and the CUDA message.
#pragma once

#include <cuda_runtime_api.h>

#include <stdexcept>
#include <string>

namespace uc {
namespace cuda {

inline void check(cudaError_t err, const char* what) {
  if (err == cudaSuccess) return;
  cudaGetLastError();  // clear a non-sticky error so the next call starts clean
  throw std::runtime_error(std::string("unicr_fast CUDA: ") + what + " failed: " +
                           cudaGetErrorName(err) + " (" + cudaGetErrorString(err) + ")");
}

// Checks the launch that was just enqueued (bad configuration, missing kernel image).
inline void check_launch(const char* kernel) { check(cudaGetLastError(), kernel); }

// Makes `device` current for the scope and restores the caller's device afterwards, so torch's
// notion of the current device is left untouched.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    check(cudaGetDevice(&previous_), "cudaGetDevice");
    if (previous_ != device) check(cudaSetDevice(device), "cudaSetDevice");
    switched_ = previous_ != device;
  }
  ~DeviceGuard() {
    if (switched_) cudaSetDevice(previous_);
  }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = 0;
  bool switched_ = false;
};

inline cudaStream_t as_stream(void* stream) { return static_cast<cudaStream_t>(stream); }

}  // namespace cuda
}  // namespace uc
