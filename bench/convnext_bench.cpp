// ConvNeXt forward throughput (images/s, eval mode) of stpain next to
// torchvision's on the same machine, in the same run, and the projected time
// to extract XLarge features for a video dataset.
//   bazel run --config=opt //bench:convnext_bench -- [--archs tiny,base] [--batches 1,8] [--help]
//
// For every arch and batch the program runs tools/bench/convnext_torch.py
// (Debian's /usr/bin/python3 with python3-torch and python3-torchvision) for
// the PyTorch figure, then times stpain in this process, so both see the same
// machine load and the same environment (OPENBLAS_CORETYPE included). Times
// are the best of --repeats calls after one warm-up call.
//
// FLOPs are counted from the configuration: 2 per multiply-add of the
// convolutions and linear layers (what the FMA peak counts). The papers'
// "GFLOPs" (4.5 for tiny, 15.4 for base) are multiply-adds; both are printed.
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "bench/bench_common.hpp"
#include "bench/peak_flops.hpp"
#include "examples/cli.hpp"
#include "stpain/models/convnext.hpp"

using namespace stpain;

namespace {

struct Options : bench::ComparisonOptions {
  std::vector<std::string> archs = {"tiny", "base"};
  std::vector<int64_t> batches = {1, 8};
  int64_t size = 224;
  // XLarge projection: measured at this batch for this many timed calls
  // (0: extrapolated from the FLOPs at the last arch's GFLOP/s instead).
  int64_t xlarge_batch = 8;
  int xlarge_iterations = 2;
  int64_t clips = 272, frames = 20;
};

// Multiply-adds of one forward pass on a height x width image, as the layers
// compute them (patchify convolutions drop partial patches; the depthwise
// convolution counts its k*k taps at every pixel, padding included, as fvcore
// and the papers do). LayerNorm, GELU, pooling and additions are not counted.
double convnext_multiply_adds(const ConvNeXtConfig& c, int64_t height, int64_t width) {
  int64_t h = height / 4, w = width / 4;
  double macs = static_cast<double>(h * w) * c.dims[0] * c.in_channels * 16;  // stem
  for (size_t i = 0; i < c.dims.size(); ++i) {
    const double dim = static_cast<double>(c.dims[i]);
    if (i > 0) {
      h /= 2;
      w /= 2;
      macs += static_cast<double>(h * w) * dim * static_cast<double>(c.dims[i - 1]) * 4;  // downsample
    }
    // Per block: depthwise 7x7, then Linear C -> 4C and 4C -> C.
    macs += static_cast<double>(c.depths[i]) * static_cast<double>(h * w) * (49 * dim + 8 * dim * dim);
  }
  return macs + static_cast<double>(c.feature_dim()) * static_cast<double>(c.num_classes);  // head
}

Tensor<float> random_images(int64_t batch, int64_t size) {
  return bench::random_normal({batch, 3, size, size}, static_cast<uint64_t>(batch * 1000 + size));
}

// ---- The PyTorch side -------------------------------------------------------

struct TorchRun {
  std::optional<double> images_per_s;
  std::string info;   // the torch_info line's fields, for the header
  std::string error;  // why there is no figure
};

TorchRun run_torch(const Options& o, const std::string& script, const std::string& arch, int64_t batch) {
  const std::string cmd = bench::shell_quote(o.python) + " " + bench::shell_quote(script) + " --archs " + arch +
                          " --batches " + std::to_string(batch) + " --threads " + std::to_string(o.threads) +
                          " --repeats " + std::to_string(o.repeats) + " --size " + std::to_string(o.size);
  const bench::ScriptRun r = bench::run_script(cmd);
  TorchRun t{.info = r.info, .error = r.error};
  for (const auto& f : r.results)
    if (f.count("images_per_s")) t.images_per_s = std::atof(f.at("images_per_s").c_str());
  if (!t.images_per_s && t.error.empty()) t.error = "'" + cmd + "' printed no figure";
  return t;
}

// ---- Output -----------------------------------------------------------------

void print_row(const std::string& arch, int64_t batch, double gmacs, double seconds, std::optional<double> torch_ips,
               double peak) {
  const double ips = static_cast<double>(batch) / seconds, gflops = 2 * gmacs * ips;
  char torch_col[32] = "       n/a", ratio_col[32] = "    n/a";
  if (torch_ips) {
    std::snprintf(torch_col, sizeof torch_col, "%10.2f", *torch_ips);
    std::snprintf(ratio_col, sizeof ratio_col, "%6.2fx", ips / *torch_ips);
  }
  std::printf("%-7s %5lld %9.2f %11.3f %12.2f %s %s %13.1f %7.0f%%\n", arch.c_str(), static_cast<long long>(batch), gmacs,
              seconds, ips, torch_col, ratio_col, gflops, 100 * gflops / peak);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  examples::Cli cli("convnext_bench", "ConvNeXt forward images/s (eval mode) of stpain next to torchvision, same run");
  cli.list_option("--archs", o.archs, "comma-separated variants, any of atto..xlarge")
      .list_option("--batches", o.batches, "comma-separated batch sizes")
      .option("--size", o.size, "image height and width (at least 32)")
      .option("--xlarge-batch", o.xlarge_batch, "batch of the XLarge measurement")
      .option("--xlarge-iterations", o.xlarge_iterations,
              "timed XLarge calls after one warm-up (0: extrapolate the projection from XLarge's FLOPs at the last "
              "arch's largest-batch GFLOP/s)")
      .option("--clips", o.clips, "clips of the dataset of the projection")
      .option("--frames", o.frames, "frames per clip of the dataset of the projection")
      .epilogue("Figures: stpain and torchvision images/s, their ratio, stpain GFLOP/s (2 FLOPs per multiply-add of\n"
                "the convolutions and linear layers) and its share of the FMA peak measured at start.");
  o.add_options(cli, "tools/bench/convnext_torch.py", "torch and torchvision");
  if (!cli.parse(argc, argv)) return cli.exit_code();
  o.make_usable();
  o.xlarge_batch = std::max<int64_t>(1, o.xlarge_batch);
  o.xlarge_iterations = std::max(0, o.xlarge_iterations);
  for (const auto& arch : o.archs) ConvNeXtConfig::variant(arch);  // unknown names fail before any timing
  if (o.size < 32) {
    std::fprintf(stderr, "convnext_bench: --size must be at least 32\n");
    return 2;
  }

  set_num_threads(o.threads);
  std::printf("ConvNeXt forward (eval), %lldx%lld images, %d thread%s\n", static_cast<long long>(o.size),
              static_cast<long long>(o.size), o.threads, o.threads > 1 ? "s" : "");
  std::printf("  OPENBLAS_CORETYPE=%s (stpain's forward GEMMs are its own kernels, %d-bit vectors; OpenBLAS and\n"
              "  PyTorch's BLAS calls follow this setting; both processes see the same environment)\n",
              bench::openblas_coretype(), static_cast<int>(backend::simd::kVectorBytes * 8));
  bench::print_load("at start");  // before the peak measurement loads the machine
  // The peak is measured before and after the rounds and the higher kept:
  // another process on a core halves it.
  if (o.wait_idle > 0) bench::wait_until_idle(o.wait_idle);
  const double peak_before = bench::measure_peak_gflops(o.threads);
  const std::string script = o.script(argv[0]);
  std::string torch_info;  // the script's torch_info line, printed under the table

  // Every round times each (arch, batch) with torchvision, then with stpain;
  // the table keeps each side's best. Several rounds ride out other load on
  // the machine (both sides see the same conditions within a round).
  struct Point {
    std::string arch;
    int64_t batch = 0;
    double gmacs = 0, seconds = 1e30;
    std::optional<double> torch_seconds;
  };
  std::vector<Point> points;
  std::vector<ConvNeXt<cpu, float>> models;
  for (const auto& arch : o.archs) {
    const ConvNeXtConfig config = ConvNeXtConfig::variant(arch);
    manual_seed(1);
    models.emplace_back(config);
    models.back().eval();
    for (int64_t batch : o.batches) points.push_back({arch, batch, convnext_multiply_adds(config, o.size, o.size) / 1e9});
  }
  std::string torch_error;
  for (int round = 1; round <= o.rounds; ++round) {
    for (size_t i = 0, a = 0; i < points.size(); ++i) {
      Point& pt = points[i];
      if (i > 0 && pt.arch != points[i - 1].arch) ++a;
      std::optional<double> torch_s;
      bool busy = false;
      if (o.wait_idle > 0) busy = !bench::wait_until_idle(o.wait_idle) || busy;
      if (o.torch && torch_error.empty()) {
        const TorchRun t = run_torch(o, script, pt.arch, pt.batch);
        if (torch_info.empty()) torch_info = t.info;
        if (t.images_per_s) {
          torch_s = static_cast<double>(pt.batch) / *t.images_per_s;
          pt.torch_seconds = std::min(pt.torch_seconds.value_or(1e30), *torch_s);
        } else if (t.info.empty()) {
          torch_error = t.error;  // torch itself is missing: no point in trying again
        } else if (round == 1) {
          std::printf("  PyTorch figure unavailable for %s batch %lld: %s\n", pt.arch.c_str(),
                      static_cast<long long>(pt.batch), t.error.c_str());
        }
      }
      const Tensor<float> images = random_images(pt.batch, o.size);
      if (o.wait_idle > 0 && o.torch && torch_error.empty()) busy = !bench::wait_until_idle(o.wait_idle) || busy;
      const double seconds = bench::best_seconds(o.repeats, [&] { models[a].forward(images); });
      pt.seconds = std::min(pt.seconds, seconds);
      std::printf("  round %d/%d  %-7s batch %-3lld stpain %8.4f s", round, o.rounds, pt.arch.c_str(),
                  static_cast<long long>(pt.batch), seconds);
      if (torch_s) std::printf("   torchvision %8.4f s", *torch_s);
      std::printf("%s\n", busy ? "   (other processes were busy)" : "");
      std::fflush(stdout);
    }
  }
  models.clear();
  if (!torch_error.empty()) std::printf("  PyTorch figure unavailable: %s\n", torch_error.c_str());

  if (o.wait_idle > 0) bench::wait_until_idle(o.wait_idle);
  const double peak_after = bench::measure_peak_gflops(o.threads);
  const double peak = std::max(peak_before, peak_after);
  std::printf("\n  measured FMA peak: %.1f GFLOP/s on %d thread%s (bench/peak_flops.hpp; %.1f before the rounds, "
              "%.1f after)\n",
              peak, o.threads, o.threads > 1 ? "s" : "", peak_before, peak_after);
  std::printf("\nBest of %d round%s, each the best of %d calls after a warm-up (s = seconds per batch):\n", o.rounds,
              o.rounds > 1 ? "s" : "", o.repeats);
  std::printf("%-7s %5s %9s %11s %12s %10s %7s %13s %8s\n", "arch", "batch", "GMAC/img", "stpain s", "stpain img/s",
              "torch img/s", "ratio", "stpain GFLOP/s", "of peak");
  double last_gflops = 0;
  for (const Point& pt : points) {
    std::optional<double> torch_ips;
    if (pt.torch_seconds) torch_ips = static_cast<double>(pt.batch) / *pt.torch_seconds;
    print_row(pt.arch, pt.batch, pt.gmacs, pt.seconds, torch_ips, peak);
    last_gflops = 2 * pt.gmacs * static_cast<double>(pt.batch) / pt.seconds;
  }
  if (!torch_info.empty()) std::printf("  torchvision run: %s\n", torch_info.c_str());
  if (const double load_after = bench::load_average(); load_after >= 0)
    std::printf("  load average after the rounds: %.2f (this program counts for up to %d)\n", load_after, o.threads);

  // XLarge features (no classifier), as a feature extractor computes them.
  ConvNeXtConfig xl = ConvNeXtConfig::variant("xlarge", 0);
  const double xl_gmacs = convnext_multiply_adds(xl, o.size, o.size) / 1e9;
  const int64_t images = o.clips * o.frames;
  std::printf("\nXLarge features (%lldx%lld, no classifier): %.2f GMAC/img\n", static_cast<long long>(o.size),
              static_cast<long long>(o.size), xl_gmacs);
  double xl_ips = 0;
  if (o.xlarge_iterations > 0) {
    manual_seed(1);
    ConvNeXt<cpu, float> model(xl);
    model.eval();
    const Tensor<float> batch = random_images(o.xlarge_batch, o.size);
    if (o.wait_idle > 0 && !bench::wait_until_idle(o.wait_idle)) std::printf("  (other processes were busy)\n");
    const double seconds = bench::best_seconds(o.xlarge_iterations, [&] { model.forward_features(batch); });
    xl_ips = static_cast<double>(o.xlarge_batch) / seconds;
    const double gflops = 2 * xl_gmacs * xl_ips;
    std::printf("  measured: batch %lld, best of %d calls after a warm-up: %.2f s/batch, %.3f img/s, %.1f GFLOP/s "
                "(%.0f%% of peak)\n",
                static_cast<long long>(o.xlarge_batch), o.xlarge_iterations, seconds, xl_ips, gflops,
                100 * gflops / peak);
  } else if (last_gflops > 0) {
    xl_ips = last_gflops / (2 * xl_gmacs);
    std::printf("  extrapolated (not measured): %.1f GFLOP/s of the last row above -> %.3f img/s\n", last_gflops,
                xl_ips);
  }
  if (xl_ips > 0) {
    const double total = static_cast<double>(images) / xl_ips;
    std::printf("  projected extraction of %lld clips x %lld frames = %lld images: %.0f s (%s) on %d thread%s (%s)\n",
                static_cast<long long>(o.clips), static_cast<long long>(o.frames), static_cast<long long>(images),
                total, bench::hms(total).c_str(), o.threads, o.threads > 1 ? "s" : "",
                o.xlarge_iterations > 0 ? "from the measured rate; decoding and resizing frames not included"
                                        : "from FLOPs");
  }
  return 0;
}
