// Host-side entry points of the CUDA module; bindings_cuda.cpp exposes them to Python.
#pragma once

namespace uc {
namespace cuda {

int device_count();

}  // namespace cuda
}  // namespace uc
