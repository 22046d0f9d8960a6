// The layers, ConvNeXt, the LSTM heads and the ST-GCN blocks instantiated with
// Backend = stpain::cuda (thrust kernels on the device, cuBLAS), for
// gpu/cuda_parity_test.cpp to compare with the cpu backend. nvcc only.
#include "stpain/backend/cuda.hpp"  // first: the backend before any layer header

#include "gpu/cuda_parity.hpp"

namespace stpain::cuda_backend {

int device_count(std::string* why) {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    if (why) *why = std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e);
    return 0;
  }
  if (n == 0 && why) *why = "no CUDA device visible";
  return n;
}

parity::CaseOutput run_parity_case(int id) { return parity::run_case<stpain::cuda>(id); }

std::string allocation_error() {
  try {
    Tensor<float, stpain::cuda> t({4});
    return "";
  } catch (const Error& e) {
    return e.what();
  }
}

}  // namespace stpain::cuda_backend
