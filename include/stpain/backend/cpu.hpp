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
#include <new>

#include "stpain/core/parallel.hpp"

namespace stpain::backend {

// Kernels of a backend are free functions in this namespace whose first
// argument is the policy (`layer_norm_forward(cpu{}, ...)`); layers call them
// unqualified, so argument-dependent lookup picks the overload of their backend.
struct cpu {
  static constexpr const char* name = "cpu";
  // Host memory: tensors of this backend can be read with data()[i].
  static constexpr bool host_accessible = true;

  static void* allocate(size_t bytes) {
    if (bytes == 0) bytes = 64;
    void* p = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (!p) throw std::bad_alloc();
    return p;
  }
  static void deallocate(void* p) { std::free(p); }
  static void copy_bytes(void* dst, const void* src, size_t bytes) { std::memcpy(dst, src, bytes); }

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

}  // namespace stpain::backend
