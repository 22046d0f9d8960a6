// GEMM throughput on 1 and 2 threads, next to the measured FMA peak:
//  - square sizes: stpain's cpu::gemm against raw OpenBLAS SGEMM and Eigen;
//  - the layers' own kernel, gemm_nt (C = A B^T + bias: Linear, ConvNeXt's
//    MLP, TemporalConv), against OpenBLAS at ConvNeXt-Tiny's MLP shapes
//    (M = 8 images x H x W rows; K x N = C x 4C and 4C x C per stage).
//   bazel run --config=opt //bench:gemm_bench -- [--sizes 256,512,1024,2048] [--nt-shapes MxKxN,...] [--repeats N]
#include <Eigen/Core>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "bench/peak_flops.hpp"
#include "stpain/backend/cpu_gemm.hpp"
#include "stpain/core/random.hpp"
#include "stpain/core/tensor.hpp"

using namespace stpain;

namespace {

template <class F>
double best_seconds(int repeats, F&& f) {
  f();  // warm-up (thread pool start, page faults)
  double best = 1e30;
  for (int r = 0; r < repeats; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

void usage() {
  std::puts(
      "gemm_bench: single-precision GEMM GFLOP/s of stpain::cpu::gemm, OpenBLAS cblas_sgemm and Eigen (square),\n"
      "and of the layers' gemm_nt against OpenBLAS (A B^T shapes)\n"
      "  --sizes LIST    comma-separated square sizes (default 256,512,1024,2048)\n"
      "  --nt-shapes LIST  comma-separated MxKxN shapes for gemm_nt (default: ConvNeXt-Tiny's MLP at batch 8)\n"
      "  --repeats N     timed repetitions per point, best kept (default 5)\n"
      "  --help          this text");
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<int64_t> sizes = {256, 512, 1024, 2048};
  struct NtShape {
    long long m, k, n;
  };
  std::vector<NtShape> nt_shapes;
  for (long long c : {96, 192, 384, 768}) {  // stage widths; 8 images of 56^2, 28^2, 14^2, 7^2 pixels
    const long long rows = 8 * (56 * 96 / c) * (56 * 96 / c);
    nt_shapes.push_back({rows, c, 4 * c});
    nt_shapes.push_back({rows, 4 * c, c});
  }
  int repeats = 5;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      usage();
      return 0;
    } else if (a == "--sizes" && i + 1 < argc) {
      sizes.clear();
      for (char* tok = std::strtok(argv[++i], ","); tok; tok = std::strtok(nullptr, ",")) sizes.push_back(std::atoll(tok));
    } else if (a == "--nt-shapes" && i + 1 < argc) {
      nt_shapes.clear();
      for (char* tok = std::strtok(argv[++i], ","); tok; tok = std::strtok(nullptr, ",")) {
        NtShape sh{};
        if (std::sscanf(tok, "%lldx%lldx%lld", &sh.m, &sh.k, &sh.n) != 3 || sh.m <= 0 || sh.k <= 0 || sh.n <= 0) {
          std::fprintf(stderr, "gemm_bench: --nt-shapes: '%s' is not MxKxN\n", tok);
          return 2;
        }
        nt_shapes.push_back(sh);
      }
    } else if (a == "--repeats" && i + 1 < argc) {
      repeats = std::atoi(argv[++i]);
    } else {
      std::fprintf(stderr, "gemm_bench: unknown argument '%s' (try --help)\n", a.c_str());
      return 2;
    }
  }
  const char* coretype = std::getenv("OPENBLAS_CORETYPE");
  std::printf("OpenBLAS kernels: %s\n", coretype ? coretype : "auto-detected");
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    Eigen::setNbThreads(threads);
    const double peak = bench::measure_peak_gflops(threads);
    std::printf("\n%d thread%s, measured FMA peak %.1f GFLOP/s\n", threads, threads > 1 ? "s" : "", peak);
    std::printf("%6s  %14s  %14s  %14s  %14s\n", "size", "stpain GFLOP/s", "OpenBLAS", "Eigen", "stpain/OpenBLAS");
    for (int64_t n : sizes) {
      Generator g(n);
      Tensor<float> a = Tensor<float>::empty({n, n}), b = Tensor<float>::empty({n, n}), c = Tensor<float>::empty({n, n});
      for (auto& v : a) v = static_cast<float>(g.normal());
      for (auto& v : b) v = static_cast<float>(g.normal());
      const double flops = 2.0 * n * n * n;
      const double t_stpain = best_seconds(repeats, [&] {
        cpu::gemm(false, false, n, n, n, 1.f, a.data(), n, b.data(), n, 0.f, c.data(), n);
      });
      const double t_blas = best_seconds(repeats, [&] {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.f, a.data(), n, b.data(), n, 0.f, c.data(), n);
      });
      const double t_eigen = best_seconds(repeats, [&] { c.matrix().noalias() = a.matrix() * b.matrix(); });
      const double g_st = flops / t_stpain / 1e9, g_blas = flops / t_blas / 1e9, g_eigen = flops / t_eigen / 1e9;
      std::printf("%6lld  %8.1f (%2.0f%%)  %8.1f (%2.0f%%)  %8.1f (%2.0f%%)  %13.0f%%\n", static_cast<long long>(n), g_st,
                  100 * g_st / peak, g_blas, 100 * g_blas / peak, g_eigen, 100 * g_eigen / peak, 100 * g_st / g_blas);
    }
    std::printf("\n%6s %5s %5s  %14s  %14s  %15s\n", "M", "K", "N", "gemm_nt GFLOP/s", "OpenBLAS NT", "gemm_nt/OpenBLAS");
    for (const NtShape& sh : nt_shapes) {
      Generator g(static_cast<uint64_t>(sh.m * 31 + sh.k));
      Tensor<float> a = Tensor<float>::empty({sh.m, sh.k}), b = Tensor<float>::empty({sh.n, sh.k});
      Tensor<float> bias = Tensor<float>::empty({sh.n}), c = Tensor<float>::empty({sh.m, sh.n});
      for (Tensor<float>* t : {&a, &b, &bias})
        for (auto& v : *t) v = static_cast<float>(g.normal());
      const double flops = 2.0 * sh.m * sh.n * sh.k;
      const double t_nt = best_seconds(repeats, [&] {
        backend::gemm_nt<float>(sh.m, sh.n, sh.k, a.data(), sh.k, b.data(), sh.k, bias.data(), c.data(), sh.n);
      });
      const double t_blas = best_seconds(repeats, [&] {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, sh.m, sh.n, sh.k, 1.f, a.data(), sh.k, b.data(), sh.k, 0.f,
                    c.data(), sh.n);
      });
      const double g_nt = flops / t_nt / 1e9, g_blas = flops / t_blas / 1e9;
      std::printf("%6lld %5lld %5lld  %8.1f (%2.0f%%)  %8.1f (%2.0f%%)  %14.0f%%\n", sh.m, sh.k, sh.n, g_nt,
                  100 * g_nt / peak, g_blas, 100 * g_blas / peak, 100 * g_nt / g_blas);
    }
  }
  return 0;
}
