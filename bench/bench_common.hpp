#pragma once
// What the benchmarks next to PyTorch (convnext_bench, lstm_heads_bench,
// stgcn_bench) share: running their reference script in the same run and
// reading its figures, the machine load, timing, random inputs, and one
// training step as fit() takes it.
#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <span>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

#include "examples/cli.hpp"
#include "stpain/core/random.hpp"
#include "stpain/train/loss.hpp"
#include "stpain/train/optim.hpp"

namespace stpain::bench {

// {"a", "b"} -> "a,b", as the reference scripts take their lists.
inline std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : ",") + item;
  return out;
}

inline std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char ch : s) q += ch == '\'' ? std::string("'\\''") : std::string(1, ch);
  return q + "'";
}

// "tag k=v k=v ..." -> {k: v}
inline std::map<std::string, std::string> parse_fields(const std::string& line) {
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

// The reference script `rel` (a workspace path): `given` when set, else from
// the runfiles (bazel run), next to the program, or the workspace.
inline std::string find_script(const std::string& given, const std::string& rel, const char* argv0) {
  namespace fs = std::filesystem;
  if (!given.empty()) return given;
  std::vector<std::string> candidates = {rel, std::string(argv0) + ".runfiles/stpain/" + rel};
  if (const char* ws = std::getenv("BUILD_WORKSPACE_DIRECTORY")) candidates.push_back(std::string(ws) + "/" + rel);
  for (const auto& c : candidates) {
    std::error_code ec;
    if (fs::exists(c, ec)) return c;
  }
  return rel;
}

// What every benchmark next to PyTorch takes: timing, the machine, and the
// PyTorch side. A program's Options derive from it and set their defaults.
struct ComparisonOptions {
  int repeats = 3, rounds = 2, threads = 2;
  double wait_idle = 0;
  bool torch = true;
  std::string python = "/usr/bin/python3", torch_script;
  std::string default_script;  // the workspace path of the program's reference script

  // --repeats, --rounds, --wait-idle, --threads, --no-torch, --python, --torch-script.
  void add_options(examples::Cli& cli, const std::string& script, const std::string& python_needs) {
    default_script = script;
    cli.option("--repeats", repeats, "timed calls per measurement after one warm-up, best kept")
        .option("--rounds", rounds,
                "rounds (PyTorch, then stpain, in each); the best round is kept (more on a busy machine)")
        .option("--wait-idle", wait_idle,
                "before each timing, wait up to this many seconds for other processes to go quiet (0: do not wait)")
        .option("--threads", threads, "threads for stpain and torch.set_num_threads")
        .flag("--no-torch", torch, "skip the PyTorch figures", false)
        .option("--python", python, "Python with " + python_needs)
        .path_option("--torch-script", torch_script, script + " (default: found from the runfiles or the workspace)");
  }
  // The reference script to run ("" with --no-torch).
  std::string script(const char* argv0) const { return torch ? find_script(torch_script, default_script, argv0) : ""; }
  // After parsing: values the loops can use (at least one call, round and thread).
  void make_usable() {
    repeats = std::max(1, repeats);
    rounds = std::max(1, rounds);
    wait_idle = std::max(0.0, wait_idle);
    threads = std::max(1, threads);
  }
};

// What a reference script printed: its torch_info line and every torch_result line's fields.
struct ScriptRun {
  std::string info;
  std::vector<std::map<std::string, std::string>> results;
  std::string error;  // set when the script failed
};

inline ScriptRun run_script(const std::string& cmd) {
  ScriptRun r;
  std::fflush(stdout);
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) {
    r.error = "could not run '" + cmd + "'";
    return r;
  }
  std::array<char, 4096> buf{};
  while (std::fgets(buf.data(), static_cast<int>(buf.size()), p)) {
    std::string line(buf.data());
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
    if (line.rfind("torch_info ", 0) == 0) r.info = line.substr(11);
    else if (line.rfind("torch_result ", 0) == 0) r.results.push_back(parse_fields(line));
  }
  const int status = pclose(p);
  const int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  if (code != 0)
    r.error = "'" + cmd + "' exited with status " + std::to_string(code) +
              (r.info.empty() ? " before importing torch (is python3-torch installed?)" : " (see its message above)");
  return r;
}

// The 1-minute load average (-1 when unknown): other work on the machine
// slows both sides, and short parallel regions much more than long ones.
inline double load_average() {
  double one = -1;
  if (FILE* f = std::fopen("/proc/loadavg", "r")) {
    if (std::fscanf(f, "%lf", &one) != 1) one = -1;
    std::fclose(f);
  }
  return one;
}

// CPU time (in cores) that other processes used over a `window` of seconds:
// all busy time in /proc/stat less this process's own. -1 when unknown.
inline double others_busy_cores(double window) {
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
inline bool wait_until_idle(double limit) {
  const auto t0 = std::chrono::steady_clock::now();
  while (true) {
    const double busy = others_busy_cores(1.0);
    if (busy >= 0 && busy < 0.1) return true;
    if (busy < 0 || std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() > limit) return false;
  }
}

inline void print_load(const char* when) {
  if (const double l = load_average(); l >= 0)
    std::printf("  load average %s: %.2f%s\n", when, l,
                l > 0.5 ? " (other work is running: both sides' figures are low and noisy; more --rounds and "
                          "--wait-idle help)"
                        : "");
}

// OPENBLAS_CORETYPE as both processes see it ("unset" when it is not set).
inline const char* openblas_coretype() {
  const char* coretype = std::getenv("OPENBLAS_CORETYPE");
  return coretype ? coretype : "unset";
}

// Seconds as h:mm:ss.
inline std::string hms(double seconds) {
  const long long s = static_cast<long long>(seconds + 0.5);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", s / 3600, s / 60 % 60, s % 60);
  return buf;
}

inline double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Best of `repeats` calls of f after one warm-up call (thread pool, page
// faults, packed buffers).
template <class F>
double best_seconds(int repeats, F&& f) {
  f();
  double best = 1e30;
  for (int r = 0; r < repeats; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    best = std::min(best, seconds_since(t0));
  }
  return best;
}

// A tensor of standard normal values; the same seed gives the same values.
inline Tensor<float> random_normal(const Shape& shape, uint64_t seed) {
  Generator g(seed);
  Tensor<float> x = Tensor<float>::empty(shape);
  for (auto& v : x) v = static_cast<float>(g.normal());
  return x;
}

// Labels 0, 1, 0, 1, ...: both classes in every batch.
inline std::vector<int64_t> alternating_labels(int64_t n) {
  std::vector<int64_t> y(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) y[static_cast<size_t>(i)] = i % 2;
  return y;
}

// The optimizer of the timed training steps: fit()'s Keras Adam.
inline const AdamOptions kFitAdam{.lr = 1e-4, .eps = 1e-7, .epsilon_hat = true};

// Number of trainable values of a model.
template <class Model>
int64_t parameter_count(Model& model) {
  int64_t n = 0;
  model.visit_parameters([&](const std::string&, auto& p) { n += p.value.numel(); });
  return n;
}

// One training step as fit() takes it per batch: forward (train mode),
// weighted cross-entropy, zero_grad, backward, Adam step.
template <class Model, class Opt>
double train_step(Model& model, Opt& opt, const Tensor<float>& x, std::span<const int64_t> labels,
                  const CrossEntropyOptions& loss_options = {}) {
  const Tensor<float> logits = model.forward(x);
  const auto loss = softmax_cross_entropy(logits, labels, loss_options);
  opt.zero_grad();
  model.backward(loss.grad);
  opt.step();
  return loss.loss;
}

}  // namespace stpain::bench
