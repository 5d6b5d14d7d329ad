// Argument checks of the CUDA entry points. Every failure throws std::invalid_argument (a
// Python ValueError) that names the argument: no input from Python may crash the process.
// Checks that need no device run first, so they also work on machines without a GPU.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "cuda_api.h"

namespace uc {
namespace cuda {

// 1 <= value <= max.
void require_count(int64_t value, int64_t max, const char* name);

// Family id in range and its parameters finite and meaningful (scales and shapes > 0).
NoiseParams checked_params(int family, const std::vector<double>& params);

// A non-null address aligned for its element type.
void require_address(uintptr_t address, size_t alignment, const char* name);

// A visible device index.
void require_device(int device);

// Memory the device can dereference: device memory of `device`, or managed memory.
void require_device_memory(uintptr_t address, int device, const char* name);

}  // namespace cuda
}  // namespace uc
