#pragma once
// The CUDA backend policy: the thrust kernels of backend/thrust/ run with
// thrust::cuda::par, GEMM through cuBLAS, tensors in CUDA managed memory from
// a size-class pool. Only nvcc translation units include this header (a
// user's own .cu file, or gpu/*.cu); everything else stays plain C++.
//
// Memory is managed (cudaMallocManaged), not device-only, on purpose for now:
// a few layers still touch tensor memory on the host (weight re-layouts,
// Residual's Eigen add, GraphConv's edge importance, parameter init, fit()'s
// gradient checks). With managed memory all of that stays
// correct, at the price of page migrations where it happens; every call
// returns with the device idle (thrust::cuda::par synchronises; gemm does),
// so host reads between calls are safe. See docs/gpu.md.
#if !defined(__CUDACC__)
#error "stpain/backend/cuda.hpp needs nvcc: include it from a .cu translation unit"
#endif

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <thrust/system/cuda/execution_policy.h>

#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "stpain/backend/thrust.hpp"
#include "stpain/core/error.hpp"

namespace stpain::backend {

namespace cuda_detail {

inline void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess)
    throw Error(std::string("CUDA backend: ") + what + ": " + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) +
                ")");
}

inline void check(cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS)
    throw Error(std::string("CUDA backend: ") + what + ": cuBLAS status " + std::to_string(static_cast<int>(s)));
}

// Throws stpain::Error naming the cause when no CUDA device can be used; the
// first tensor allocation on the cuda backend calls it.
inline void require_device() {
  static const bool ok = [] {
    int n = 0;
    const cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess)
      throw Error(std::string("the CUDA backend was requested but no CUDA device is usable: cudaGetDeviceCount: ") +
                  cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")");
    if (n == 0) throw Error("the CUDA backend was requested but no CUDA device is visible");
    return true;
  }();
  (void)ok;
}

// Freed blocks kept by size class for the next allocation of that class:
// cudaMallocManaged and cudaFree synchronise the device and cost far more
// than a small kernel. Classes: powers of two up to 1 MiB, then multiples of
// 1 MiB. Holds at most `limit` bytes; thread-safe; never frees on exit
// (tensors with static storage may outlive the CUDA context).
class ManagedPool {
 public:
  static size_t size_class(size_t bytes) {
    if (bytes <= 256) return 256;
    if (bytes <= (size_t{1} << 20)) {
      size_t c = 256;
      while (c < bytes) c <<= 1;
      return c;
    }
    return (bytes + (size_t{1} << 20) - 1) >> 20 << 20;
  }
  void* get(size_t bytes) {
    const size_t c = size_class(bytes);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = free_.find(c);
      if (it != free_.end() && !it->second.empty()) {
        void* p = it->second.back();
        it->second.pop_back();
        cached_ -= c;
        return p;
      }
    }
    require_device();
    void* p = nullptr;
    check(cudaMallocManaged(&p, c), "cudaMallocManaged");
    return p;
  }
  void put(void* p, size_t bytes) {
    const size_t c = size_class(bytes);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (cached_ + c <= limit_) {
        free_[c].push_back(p);
        cached_ += c;
        return;
      }
    }
    cudaFree(p);  // no throw from a deleter
  }
  // Frees every cached block and caps the cache at `bytes` (0 turns it off).
  void set_limit(size_t bytes) {
    std::lock_guard<std::mutex> lock(mutex_);
    limit_ = bytes;
    for (auto& [c, blocks] : free_)
      for (void* p : blocks) cudaFree(p);
    free_.clear();
    cached_ = 0;
  }

 private:
  std::mutex mutex_;
  std::unordered_map<size_t, std::vector<void*>> free_;
  size_t cached_ = 0, limit_ = size_t{16} << 30;
};

inline ManagedPool& managed_pool() {
  static ManagedPool* pool = new ManagedPool;
  return *pool;
}

// One cuBLAS handle per host thread (a handle must not be used by two
// threads at once), on the legacy default stream like thrust::cuda::par.
inline cublasHandle_t cublas_handle() {
  thread_local cublasHandle_t handle = [] {
    require_device();
    cublasHandle_t h = nullptr;
    check(cublasCreate(&h), "cublasCreate");
    return h;
  }();
  return handle;
}

inline cublasOperation_t op(bool trans) { return trans ? CUBLAS_OP_T : CUBLAS_OP_N; }

}  // namespace cuda_detail

struct cuda {
  static constexpr bool is_thrust_backend = true;
  static constexpr const char* name = "cuda";
  // Managed memory: data()[i] works on the host between calls (slowly: the
  // page migrates). See the note at the top.
  static constexpr bool host_accessible = true;
  static auto exec() { return thrust::cuda::par; }

  static void* allocate(size_t bytes) { return cuda_detail::managed_pool().get(bytes); }
  static void deallocate(void* p, size_t bytes) { cuda_detail::managed_pool().put(p, bytes); }
  // Any direction: host, managed and device pointers (unified addressing).
  static void copy_bytes(void* dst, const void* src, size_t bytes) {
    if (bytes) cuda_detail::check(cudaMemcpy(dst, src, bytes, cudaMemcpyDefault), "cudaMemcpy");
  }
  static void synchronize() { cuda_detail::check(cudaDeviceSynchronize(), "cudaDeviceSynchronize"); }
  // On the device (zero_grad and fresh zero tensors at every step: a host
  // memset would pull every page of managed memory to the host).
  static void zero_bytes(void* p, size_t bytes) {
    if (!bytes) return;
    cuda_detail::check(cudaMemset(p, 0, bytes), "cudaMemset");
    synchronize();
  }

  // Row-major C[M,N] = alpha op(A) op(B) + beta C. cuBLAS is column-major,
  // where a row-major matrix reads as its transpose: C^T = op(B)^T op(A)^T,
  // i.e. the operands swap places and M and N swap.
  static void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                   int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
    if (m == 0 || n == 0) return;
    cuda_detail::check(cublasSgemm(cuda_detail::cublas_handle(), cuda_detail::op(trans_b), cuda_detail::op(trans_a),
                                   int(n), int(m), int(k), &alpha, b, int(ldb), a, int(lda), &beta, c, int(ldc)),
                       "cublasSgemm");
    synchronize();
  }
  static void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, double alpha, const double* a,
                   int64_t lda, const double* b, int64_t ldb, double beta, double* c, int64_t ldc) {
    if (m == 0 || n == 0) return;
    cuda_detail::check(cublasDgemm(cuda_detail::cublas_handle(), cuda_detail::op(trans_b), cuda_detail::op(trans_a),
                                   int(n), int(m), int(k), &alpha, b, int(ldb), a, int(lda), &beta, c, int(ldc)),
                       "cublasDgemm");
    synchronize();
  }

  // Host loops of the layers (GraphConv's per-sample GEMMs): one host thread,
  // as they call gemm, whose handle is per thread and whose calls queue on
  // one stream anyway.
  template <class F>
  static void parallel_for(int64_t n, int64_t, F&& f) {
    if (n > 0) f(int64_t{0}, n);
  }
};

}  // namespace stpain::backend

namespace stpain {
using backend::cuda;
}  // namespace stpain
