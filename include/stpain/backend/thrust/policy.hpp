#pragma once
// Backend policies whose kernels are thrust algorithms (backend/thrust/*.hpp).
//
// The kernels are written once, as thrust::for_each_n over a counting
// iterator with __host__ __device__ lambdas, templated on the policy P. P
// says where they run (P::exec(): a thrust execution policy), where tensors
// live (allocate/deallocate/copy_bytes) and how GEMM is done:
//   thrust_host  thrust's sequential host system, cpu's memory and OpenBLAS:
//                plain g++, so CPU-only builds test the thrust kernels;
//   thrust_omp   the same on thrust's OpenMP system;
//   cuda         thrust::cuda::par, device memory, cuBLAS (backend/cuda.hpp,
//                nvcc translation units only).
#include <cmath>
#include <cstdint>
#include <type_traits>

#include <math.h>

#include <thrust/for_each.h>
#include <thrust/iterator/counting_iterator.h>
#include <thrust/system/cpp/execution_policy.h>
#ifdef _OPENMP
#include <thrust/system/omp/execution_policy.h>
#endif

#include "stpain/backend/cpu.hpp"

// Code shared by host and device: __host__ __device__ under nvcc, nothing
// under g++ (CCCL 3 no longer defines __host__/__device__ for plain g++).
#if defined(__CUDACC__)
#define STPAIN_HD __host__ __device__
#else
#define STPAIN_HD
#endif

namespace stpain::backend {

// A policy whose kernels are the thrust ones.
template <class P>
concept thrust_backend = requires {
  { P::is_thrust_backend } -> std::convertible_to<bool>;
} && P::is_thrust_backend;

// Thrust on the host, in cpu's memory: everything but the kernels is cpu's.
template <class System>
struct thrust_host_policy {
  static constexpr bool is_thrust_backend = true;
  static constexpr bool host_accessible = true;
  static constexpr const char* name = System::name;
  static auto exec() { return System::exec(); }

  static void* allocate(size_t bytes) { return cpu::allocate(bytes); }
  static void deallocate(void* p, size_t bytes) { cpu::deallocate(p, bytes); }
  static void copy_bytes(void* dst, const void* src, size_t bytes) { cpu::copy_bytes(dst, src, bytes); }
  static void zero_bytes(void* p, size_t bytes) { cpu::zero_bytes(p, bytes); }
  static void synchronize() {}

  template <class T>
  static void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, T alpha, const T* a, int64_t lda,
                   const T* b, int64_t ldb, T beta, T* c, int64_t ldc) {
    cpu::gemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  }
  template <class F>
  static void parallel_for(int64_t n, int64_t grain, F&& f) {
    cpu::parallel_for(n, grain, std::forward<F>(f));
  }
};

struct thrust_cpp_system {
  static constexpr const char* name = "thrust_host";
  static auto exec() { return thrust::cpp::par; }
};
using thrust_host = thrust_host_policy<thrust_cpp_system>;

#ifdef _OPENMP
struct thrust_omp_system {
  static constexpr const char* name = "thrust_omp";
  static auto exec() { return thrust::omp::par; }
};
using thrust_omp = thrust_host_policy<thrust_omp_system>;
#endif

namespace thrust_detail {

// f(i) for i in [0, n) on the policy's system.
template <class P, class F>
void for_n(int64_t n, F f) {
  if (n > 0) thrust::for_each_n(P::exec(), thrust::counting_iterator<int64_t>(0), n, f);
}

// Math that compiles for host and device: the C library names, which CUDA
// provides as device functions too (std::exp is host-only under nvcc).
STPAIN_HD inline float exp_(float x) { return ::expf(x); }
STPAIN_HD inline double exp_(double x) { return ::exp(x); }
STPAIN_HD inline float log_(float x) { return ::logf(x); }
STPAIN_HD inline double log_(double x) { return ::log(x); }
STPAIN_HD inline float erf_(float x) { return ::erff(x); }
STPAIN_HD inline double erf_(double x) { return ::erf(x); }
STPAIN_HD inline float tanh_(float x) { return ::tanhf(x); }
STPAIN_HD inline double tanh_(double x) { return ::tanh(x); }
STPAIN_HD inline float sqrt_(float x) { return ::sqrtf(x); }
STPAIN_HD inline double sqrt_(double x) { return ::sqrt(x); }
template <class T>
STPAIN_HD T max_(T a, T b) {
  return a < b ? b : a;
}
template <class T>
STPAIN_HD T min_(T a, T b) {
  return b < a ? b : a;
}

}  // namespace thrust_detail

}  // namespace stpain::backend

namespace stpain {
using backend::thrust_host;
#ifdef _OPENMP
using backend::thrust_omp;
#endif
}  // namespace stpain
