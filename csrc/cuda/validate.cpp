// Argument checks of the CUDA entry points that ask the driver (see validate.h).
#include "validate.h"

#include <cuda_runtime_api.h>

#include <string>

#include "../common/checks.h"
#include "cuda_api.h"

namespace uc {
namespace cuda {

void require_device(int device) {
  const int n = device_count();
  if (device < 0 || device >= n)
    argument_error("device index " + std::to_string(device) + " is not a visible CUDA device (" +
                   std::to_string(n) + " visible)");
}

void require_device_memory(uintptr_t address, int device, const char* name) {
  cudaPointerAttributes attr{};
  const cudaError_t err = cudaPointerGetAttributes(&attr, reinterpret_cast<const void*>(address));
  if (err != cudaSuccess) {
    cudaGetLastError();
    argument_error(std::string(name) + " is not a CUDA pointer (" + cudaGetErrorString(err) +
                   ")");
  }
  if (attr.type == cudaMemoryTypeManaged) return;
  if (attr.type != cudaMemoryTypeDevice)
    argument_error(std::string(name) +
                   " must point to CUDA device memory (got host memory: pass a CUDA tensor)");
  if (attr.device != device)
    argument_error(std::string(name) + " lives on device " + std::to_string(attr.device) +
                   " but the kernel runs on device " + std::to_string(device));
}

}  // namespace cuda
}  // namespace uc
