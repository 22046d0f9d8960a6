#pragma once
// The CPU backend policy: 64-byte aligned host memory, GEMM through OpenBLAS
// (multi-threaded on all cores), parallel loops through OpenMP.
// A backend policy is a type with static members; layers take it as their
// first template parameter (Linear<cpu>, Linear<cuda>).
#include <cblas.h>

#include <Eigen/Core>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <unordered_map>
#include <vector>

#include "stpain/core/parallel.hpp"

namespace stpain::backend {

namespace detail {

// Keeps freed blocks of 64 KiB and more, by size, for the next allocation of
// the same size: training and inference allocate the same shapes every step.
// Holds at most `limit` bytes; thread-safe.
class HostBlockCache {
 public:
  static constexpr size_t kMinCached = size_t{64} << 10;

  void* get(size_t bytes) {
    bytes = round(bytes);
    if (bytes >= kMinCached) {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = free_.find(bytes);
      if (it != free_.end() && !it->second.empty()) {
        void* p = it->second.back();
        it->second.pop_back();
        cached_ -= bytes;
        return p;
      }
    }
    void* p = std::aligned_alloc(64, bytes);
    if (!p) throw std::bad_alloc();
    return p;
  }
  void put(void* p, size_t bytes) {
    bytes = round(bytes);
    if (bytes >= kMinCached) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (cached_ + bytes <= limit_) {
        free_[bytes].push_back(p);
        cached_ += bytes;
        return;
      }
    }
    std::free(p);
  }
  // Frees every cached block and caps the cache at `bytes` (0 turns it off).
  void set_limit(size_t bytes) {
    std::lock_guard<std::mutex> lock(mutex_);
    limit_ = bytes;
    for (auto& [size, blocks] : free_)
      for (void* p : blocks) std::free(p);
    free_.clear();
    cached_ = 0;
  }
  size_t cached_bytes() {
    std::lock_guard<std::mutex> lock(mutex_);
    return cached_;
  }
 private:
  static size_t round(size_t bytes) { return bytes == 0 ? 64 : (bytes + 63) / 64 * 64; }

  std::mutex mutex_;
  std::unordered_map<size_t, std::vector<void*>> free_;
  size_t cached_ = 0, limit_ = size_t{4} << 30;
};

// Never destroyed: tensors with static storage may be freed after main().
inline HostBlockCache& host_block_cache() {
  static HostBlockCache* cache = new HostBlockCache;
  return *cache;
}

}  // namespace detail

// Kernels of a backend are free functions in this namespace whose first
// argument is the policy (`layer_norm_forward(cpu{}, ...)`); layers call them
// unqualified, so argument-dependent lookup picks the overload of their backend.
struct cpu {
  static constexpr const char* name = "cpu";
  // Host memory: tensors of this backend can be read with data()[i].
  static constexpr bool host_accessible = true;

  // Large blocks are recycled (see HostBlockCache): a fresh block costs a page
  // fault per 4 KiB on first touch, more than the arithmetic of most layers.
  static void* allocate(size_t bytes) { return detail::host_block_cache().get(bytes); }
  static void deallocate(void* p, size_t bytes) { detail::host_block_cache().put(p, bytes); }
  static void copy_bytes(void* dst, const void* src, size_t bytes) { std::memcpy(dst, src, bytes); }
  static void zero_bytes(void* p, size_t bytes) { std::memset(p, 0, bytes); }

  // Row-major C[M,N] = alpha * op(A)[M,K] op(B)[K,N] + beta * C.
  // lda/ldb/ldc are row strides of A, B, C as stored.
  static void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                   const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
                   int64_t ldc) {
    if (m == 0 || n == 0) return;
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
                blasint(m), blasint(n), blasint(k), alpha, a, blasint(lda), b, blasint(ldb), beta, c,
                blasint(ldc));
  }
  static void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, double alpha,
                   const double* a, int64_t lda, const double* b, int64_t ldb, double beta, double* c,
                   int64_t ldc) {
    if (m == 0 || n == 0) return;
    cblas_dgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
                blasint(m), blasint(n), blasint(k), alpha, a, blasint(lda), b, blasint(ldb), beta, c,
                blasint(ldc));
  }

  template <class F>
  static void parallel_for(int64_t n, int64_t grain, F&& f) {
    stpain::parallel_for(n, grain, std::forward<F>(f));
  }
};

}  // namespace stpain::backend

namespace stpain {
using backend::cpu;
}  // namespace stpain

namespace stpain::backend {

// y[r, :] += bias for every row of a [rows, cols] matrix.
template <class T>
void add_bias(cpu, T* y, const T* bias, int64_t rows, int64_t cols) {
  parallel_for(rows, 64, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      T* row = y + r * cols;
#pragma omp simd
      for (int64_t c = 0; c < cols; ++c) row[c] += bias[c];
    }
  });
}

// out[c] += sum over rows of x[r, c] (a bias gradient).
template <class T>
void accumulate_column_sums(cpu, const T* x, T* out, int64_t rows, int64_t cols) {
  Eigen::Map<const Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>> m(x, rows, cols);
  Eigen::Map<Eigen::Matrix<T, 1, Eigen::Dynamic>> o(out, cols);
  o += m.colwise().sum();
}

// Convolution weights between PyTorch's layout and channels-last, per block
// of `blocks`: w [C, kk] -> out [kk, C] (taps reversed when flipped), and
// grad [C, kk] += dw [kk, C].
template <class T>
void taps_to_channels_last(cpu, const T* w, T* out, int64_t blocks, int64_t c, int64_t kk, bool flipped) {
  for (int64_t b = 0; b < blocks; ++b, w += kk * c, out += kk * c)
    for (int64_t j = 0; j < kk; ++j) {
      T* row = out + (flipped ? kk - 1 - j : j) * c;
      for (int64_t ch = 0; ch < c; ++ch) row[ch] = w[ch * kk + j];
    }
}
template <class T>
void add_taps_from_channels_last(cpu, const T* dw, T* grad, int64_t blocks, int64_t c, int64_t kk) {
  for (int64_t b = 0; b < blocks; ++b, dw += kk * c, grad += kk * c)
    for (int64_t ch = 0; ch < c; ++ch)
      for (int64_t j = 0; j < kk; ++j) grad[ch * kk + j] += dw[j * c + ch];
}

// y[i] += x[i].
template <class T>
void add_into(cpu, const T* x, T* y, int64_t n) {
  Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>(y, n) += Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>(x, n);
}

// True when no value of x[0, n) is NaN or infinite.
template <class T>
bool all_finite(cpu, const T* x, int64_t n) {
  return Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>(x, n).allFinite();
}

}  // namespace stpain::backend
