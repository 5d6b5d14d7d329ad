// Device discovery that never throws: no driver or no GPU simply means 0 devices.
#include <cuda_runtime.h>

#include "cuda_api.h"
#include "cuda_check.h"

namespace uc {
namespace cuda {

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky error so later calls start clean
    return 0;
  }
  return n;
}

int multiprocessor_count(int device) {
  int n = 0;
  check(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, device),
        "cudaDeviceGetAttribute(MultiProcessorCount)");
  return n;
}

}  // namespace cuda
}  // namespace uc
