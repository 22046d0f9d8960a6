#pragma once
// Host-side view of the CUDA runtime, compiled by nvcc (device_info.cu) and
// callable from plain C++. The CUDA backend proper arrives with the GPU issue;
// this keeps `--config=cuda` building a real nvcc target meanwhile.
#include <string>

namespace stpain::cuda_runtime {

// Number of visible CUDA devices; 0 with `why` set when there is none.
int device_count(std::string* why = nullptr);

// y = a * x + y on the device through thrust, summed on the device: checks
// that kernels, thrust and the runtime work end to end.
double saxpy_sum(float a, int n);

}  // namespace stpain::cuda_runtime
