// Checks of the CUDA entry points that need the driver: the device index is visible and each
// address is memory that device can read. What the host can check alone (sizes, family
// parameters, null or misaligned addresses) is in csrc/common/checks.h and runs first, so it
// also works on machines without a GPU. Every failure throws std::invalid_argument (a Python
// ValueError) naming the argument.
#pragma once

#include <cstdint>

namespace uc {
namespace cuda {

// A visible device index.
void require_device(int device);

// Memory the device can dereference: device memory of `device`, or managed memory.
void require_device_memory(uintptr_t address, int device, const char* name);

}  // namespace cuda
}  // namespace uc
