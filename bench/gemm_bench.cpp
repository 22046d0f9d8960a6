// GEMM throughput: stpain's CPU backend against raw OpenBLAS SGEMM and Eigen,
// for square sizes 256..2048 on 1 and 2 threads, next to the measured FMA peak.
//   bazel run --config=opt //bench:gemm_bench -- [--sizes 256,512,1024,2048] [--repeats N]
#include <Eigen/Core>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "bench/peak_flops.hpp"
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
      "gemm_bench: single-precision GEMM GFLOP/s of stpain::cpu::gemm, OpenBLAS cblas_sgemm and Eigen\n"
      "  --sizes LIST    comma-separated square sizes (default 256,512,1024,2048)\n"
      "  --repeats N     timed repetitions per point, best kept (default 5)\n"
      "  --help          this text");
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<int64_t> sizes = {256, 512, 1024, 2048};
  int repeats = 5;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      usage();
      return 0;
    } else if (a == "--sizes" && i + 1 < argc) {
      sizes.clear();
      for (char* tok = std::strtok(argv[++i], ","); tok; tok = std::strtok(nullptr, ",")) sizes.push_back(std::atoll(tok));
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
  }
  return 0;
}
