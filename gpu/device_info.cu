#include <cuda_runtime.h>
#include <thrust/device_vector.h>
#include <thrust/functional.h>
#include <thrust/reduce.h>
#include <thrust/sequence.h>
#include <thrust/transform.h>

#include "gpu/device_info.hpp"

namespace stpain::cuda_runtime {

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

namespace {
struct Saxpy {
  float a;
  __host__ __device__ float operator()(float x, float y) const { return a * x + y; }
};
}  // namespace

double saxpy_sum(float a, int n) {
  thrust::device_vector<float> x(n), y(n, 1.f);
  thrust::sequence(x.begin(), x.end());
  thrust::transform(x.begin(), x.end(), y.begin(), y.begin(), Saxpy{a});
  return thrust::reduce(y.begin(), y.end(), 0.0, thrust::plus<double>());
}

}  // namespace stpain::cuda_runtime
