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
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include "bench/peak_flops.hpp"
#include "stpain/core/random.hpp"
#include "stpain/models/convnext.hpp"

using namespace stpain;

namespace {

struct Options {
  std::vector<std::string> archs = {"tiny", "base"};
  std::vector<int64_t> batches = {1, 8};
  int repeats = 3;
  int rounds = 2;
  double wait_idle = 0;  // seconds to wait for other processes to go quiet before each point
  int threads = 2;
  int64_t size = 224;
  bool torch = true;
  std::string python = "/usr/bin/python3";
  std::string torch_script;  // found next to the program when empty
  // XLarge projection: measured at this batch for this many timed calls
  // (0: extrapolated from the FLOPs at the last arch's GFLOP/s instead).
  int64_t xlarge_batch = 8;
  int xlarge_iterations = 2;
  int64_t clips = 272, frames = 20;
};

void usage() {
  std::puts(
      "convnext_bench: ConvNeXt forward images/s (eval mode) of stpain next to torchvision, same run\n"
      "  --archs LIST          comma-separated variants (default tiny,base; any of atto..xlarge)\n"
      "  --batches LIST        comma-separated batch sizes (default 1,8)\n"
      "  --repeats N           timed calls per point after one warm-up, best kept (default 3)\n"
      "  --rounds N            rounds over all points, torchvision then stpain in each; the best\n"
      "                        round is kept (default 2; more on a busy machine)\n"
      "  --wait-idle S         before each point, wait up to S seconds until other processes use less\n"
      "                        than a tenth of a core (default 0: do not wait)\n"
      "  --threads N           threads for stpain and torch.set_num_threads (default 2)\n"
      "  --size N              image height and width (default 224)\n"
      "  --no-torch            skip the PyTorch figures\n"
      "  --python PATH         Python with torch and torchvision (default /usr/bin/python3)\n"
      "  --torch-script PATH   tools/bench/convnext_torch.py (default: found from the runfiles or\n"
      "                        the workspace)\n"
      "  --xlarge-batch N      batch of the XLarge measurement (default 8)\n"
      "  --xlarge-iterations N timed XLarge calls after one warm-up (default 2; 0: extrapolate the\n"
      "                        projection from XLarge's FLOPs at the last arch's largest-batch GFLOP/s)\n"
      "  --clips N --frames N  the dataset of the projection (default 272 clips x 20 frames)\n"
      "  --help                this text\n"
      "Figures: stpain and torchvision images/s, their ratio, stpain GFLOP/s (2 FLOPs per multiply-add of\n"
      "the convolutions and linear layers) and its share of the FMA peak measured at start.");
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}

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

template <class F>
double best_seconds(int repeats, F&& f) {
  f();  // warm-up: thread pool, page faults, packed buffers
  double best = 1e30;
  for (int r = 0; r < repeats; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

Tensor<float> random_images(int64_t batch, int64_t size) {
  Generator g(static_cast<uint64_t>(batch * 1000 + size));
  Tensor<float> x = Tensor<float>::empty({batch, 3, size, size});
  for (auto& v : x) v = static_cast<float>(g.normal());
  return x;
}

// ---- The PyTorch side -------------------------------------------------------

std::string find_torch_script(const Options& o, const char* argv0) {
  namespace fs = std::filesystem;
  if (!o.torch_script.empty()) return o.torch_script;
  const std::string rel = "tools/bench/convnext_torch.py";
  std::vector<std::string> candidates = {rel,  // bazel run: the runfiles tree is the working directory
                                         std::string(argv0) + ".runfiles/stpain/" + rel};
  if (const char* ws = std::getenv("BUILD_WORKSPACE_DIRECTORY")) candidates.push_back(std::string(ws) + "/" + rel);
  for (const auto& c : candidates) {
    std::error_code ec;
    if (fs::exists(c, ec)) return c;
  }
  return rel;
}

std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char ch : s) q += ch == '\'' ? std::string("'\\''") : std::string(1, ch);
  return q + "'";
}

// "tag k=v k=v ..." -> {k: v}
std::map<std::string, std::string> parse_fields(const std::string& line) {
  std::map<std::string, std::string> f;
  std::stringstream ss(line);
  std::string tok;
  ss >> tok;  // the tag
  while (ss >> tok) {
    const auto eq = tok.find('=');
    if (eq != std::string::npos) f[tok.substr(0, eq)] = tok.substr(eq + 1);
  }
  return f;
}

struct TorchRun {
  std::optional<double> images_per_s;
  std::string info;   // the torch_info line's fields, for the header
  std::string error;  // why there is no figure
};

TorchRun run_torch(const Options& o, const std::string& script, const std::string& arch, int64_t batch) {
  TorchRun r;
  const std::string cmd = shell_quote(o.python) + " " + shell_quote(script) + " --archs " + arch + " --batches " +
                          std::to_string(batch) + " --threads " + std::to_string(o.threads) + " --repeats " +
                          std::to_string(o.repeats) + " --size " + std::to_string(o.size);
  std::fflush(stdout);
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) {
    r.error = "could not start " + o.python;
    return r;
  }
  std::array<char, 4096> buf{};
  while (std::fgets(buf.data(), static_cast<int>(buf.size()), p)) {
    std::string line(buf.data());
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
    if (line.rfind("torch_info ", 0) == 0) {
      r.info = line.substr(11);
    } else if (line.rfind("torch_result ", 0) == 0) {
      const auto f = parse_fields(line);
      if (f.count("images_per_s")) r.images_per_s = std::atof(f.at("images_per_s").c_str());
    }
  }
  const int status = pclose(p);
  if (!r.images_per_s)
    r.error = "'" + cmd + "' exited with status " + std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : -1) +
              (r.info.empty() ? " before importing torch (is python3-torch / python3-torchvision installed?)"
                              : " without a figure (see its message above)");
  return r;
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

// The 1-minute load average (-1 when unknown): other work on the machine
// slows both sides, and short parallel regions much more than long ones.
double load_average() {
  double one = -1;
  if (FILE* f = std::fopen("/proc/loadavg", "r")) {
    if (std::fscanf(f, "%lf", &one) != 1) one = -1;
    std::fclose(f);
  }
  return one;
}

// CPU time (in cores) that other processes used over a `window` of seconds:
// all busy time in /proc/stat less this process's own. -1 when unknown.
double others_busy_cores(double window) {
  auto sample = [](double& busy, double& self) {
    busy = self = -1;
    if (FILE* f = std::fopen("/proc/stat", "r")) {
      unsigned long long v[8] = {};
      if (std::fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
                      &v[6], &v[7]) == 8)
        busy = static_cast<double>(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]);  // all but idle and iowait
      std::fclose(f);
    }
    if (FILE* f = std::fopen("/proc/self/stat", "r")) {
      unsigned long long utime = 0, stime = 0;
      // Fields 14 and 15; the command name (field 2) is in parentheses.
      if (std::fscanf(f, "%*d (%*[^)]) %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime) == 2)
        self = static_cast<double>(utime + stime);
      std::fclose(f);
    }
  };
  double b0, s0, b1, s1;
  sample(b0, s0);
  std::this_thread::sleep_for(std::chrono::duration<double>(window));
  sample(b1, s1);
  if (b0 < 0 || s0 < 0 || b1 < 0 || s1 < 0) return -1;
  return std::max(0.0, (b1 - b0) - (s1 - s0)) / static_cast<double>(sysconf(_SC_CLK_TCK)) / window;
}

// Waits up to `limit` seconds until other processes use less than a tenth of
// a core; false when they did not.
bool wait_until_idle(double limit) {
  const auto t0 = std::chrono::steady_clock::now();
  while (true) {
    const double busy = others_busy_cores(1.0);
    if (busy >= 0 && busy < 0.1) return true;
    if (busy < 0 || std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() > limit) return false;
  }
}

std::string hms(double seconds) {
  const long long s = static_cast<long long>(seconds + 0.5);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", s / 3600, s / 60 % 60, s % 60);
  return buf;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "convnext_bench: %s needs a value (try --help)\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--help" || a == "-h") {
      usage();
      return 0;
    } else if (a == "--archs") {
      o.archs = split(next());
    } else if (a == "--batches") {
      o.batches.clear();
      for (const auto& b : split(next())) o.batches.push_back(std::atoll(b.c_str()));
    } else if (a == "--repeats") {
      o.repeats = std::max(1, std::atoi(next().c_str()));
    } else if (a == "--rounds") {
      o.rounds = std::max(1, std::atoi(next().c_str()));
    } else if (a == "--wait-idle") {
      o.wait_idle = std::max(0.0, std::atof(next().c_str()));
    } else if (a == "--threads") {
      o.threads = std::max(1, std::atoi(next().c_str()));
    } else if (a == "--size") {
      o.size = std::atoll(next().c_str());
    } else if (a == "--no-torch") {
      o.torch = false;
    } else if (a == "--python") {
      o.python = next();
    } else if (a == "--torch-script") {
      o.torch_script = next();
    } else if (a == "--xlarge-batch") {
      o.xlarge_batch = std::max<int64_t>(1, std::atoll(next().c_str()));
    } else if (a == "--xlarge-iterations") {
      o.xlarge_iterations = std::max(0, std::atoi(next().c_str()));
    } else if (a == "--clips") {
      o.clips = std::atoll(next().c_str());
    } else if (a == "--frames") {
      o.frames = std::atoll(next().c_str());
    } else {
      std::fprintf(stderr, "convnext_bench: unknown argument '%s' (try --help)\n", a.c_str());
      return 2;
    }
  }
  for (const auto& arch : o.archs) ConvNeXtConfig::variant(arch);  // unknown names fail before any timing
  if (o.size < 32) {
    std::fprintf(stderr, "convnext_bench: --size must be at least 32\n");
    return 2;
  }

  set_num_threads(o.threads);
  const double load_before = load_average();
  // The peak is measured before and after the rounds and the higher kept:
  // another process on a core halves it.
  if (o.wait_idle > 0) wait_until_idle(o.wait_idle);
  const double peak_before = bench::measure_peak_gflops(o.threads);
  double peak = peak_before;
  const char* coretype = std::getenv("OPENBLAS_CORETYPE");
  std::printf("ConvNeXt forward (eval), %lldx%lld images, %d thread%s\n", static_cast<long long>(o.size),
              static_cast<long long>(o.size), o.threads, o.threads > 1 ? "s" : "");

  std::printf("  OPENBLAS_CORETYPE=%s (stpain's forward GEMMs are its own kernels, %d-bit vectors; OpenBLAS and\n"
              "  PyTorch's BLAS calls follow this setting; both processes see the same environment)\n",
              coretype ? coretype : "unset", static_cast<int>(backend::simd::kVectorBytes * 8));
  if (load_before >= 0)
    std::printf("  load average at start: %.2f%s\n", load_before,
                load_before > 0.5 ? " (other work is running: figures of both sides will be low and noisy; more "
                                    "--rounds and --wait-idle help)"
                                  : "");
  const std::string script = o.torch ? find_torch_script(o, argv[0]) : "";
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
      if (o.wait_idle > 0) busy = !wait_until_idle(o.wait_idle) || busy;
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
      if (o.wait_idle > 0 && o.torch && torch_error.empty()) busy = !wait_until_idle(o.wait_idle) || busy;
      const double seconds = best_seconds(o.repeats, [&] { models[a].forward(images); });
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

  if (o.wait_idle > 0) wait_until_idle(o.wait_idle);
  const double peak_after = bench::measure_peak_gflops(o.threads);
  peak = std::max(peak_before, peak_after);
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
  if (const double load_after = load_average(); load_after >= 0)
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
    if (o.wait_idle > 0 && !wait_until_idle(o.wait_idle)) std::printf("  (other processes were busy)\n");
    const double seconds = best_seconds(o.xlarge_iterations, [&] { model.forward_features(batch); });
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
                total, hms(total).c_str(), o.threads, o.threads > 1 ? "s" : "",
                o.xlarge_iterations > 0 ? "from the measured rate; decoding and resizing frames not included"
                                        : "from FLOPs");
  }
  return 0;
}
