// Python bindings of the CUDA module (unicr_fast._cuda).
#include <pybind11/pybind11.h>

#include "cuda_api.h"

PYBIND11_MODULE(_cuda, m) {
  m.doc() = "unicr_fast CUDA kernels";
  m.def("device_count", &uc::cuda::device_count, "Number of usable CUDA devices (0 without a driver).");
}
