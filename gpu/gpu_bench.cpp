// The CUDA backend's speed next to PyTorch on the same GPU, in the same run
// (issue 7): ConvNeXt forward images/s at batch 32 (Tiny, Base, XLarge), and
// training steps of both experiments (the LSTM heads on ConvNeXt-XLarge
// features, the landmark networks). Built with --config=cuda:
//   bazel run --config=cuda //gpu:gpu_bench -- [--archs tiny,base,xlarge] [--no-torch] [--help]
// PyTorch runs the reference scripts of //bench with --device cuda; Debian's
// python3-torch has no CUDA, so give --python a Python whose torch has.
// Ratios are stpain's speed over PyTorch's (> 1: stpain is faster).
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "bench/bench_common.hpp"
#include "examples/cli.hpp"
#include "gpu/cuda_bench.hpp"
#include "gpu/cuda_training.hpp"

using namespace stpain;

namespace {

struct Options {
  std::vector<std::string> archs = {"tiny", "base", "xlarge"};
  std::vector<std::string> heads = {"lstm", "bilstm", "attention", "stacked"};
  std::vector<std::string> models = {"lstm-recurrent", "lstm-averaging"};
  int64_t batch = 32, size = 224, head_batch = 8, frames = 20, features = 2048, stgcn_batch = 10;
  int repeats = 5;
  bool torch = true;
  std::string python = "/usr/bin/python3";
};

// The figures one reference script printed, keyed by the value of `key`
// (arch, head or model); its error on stdout when it failed.
std::map<std::string, std::map<std::string, std::string>> torch_figures(const Options& o, const char* argv0,
                                                                        const std::string& script,
                                                                        const std::string& args, const char* key) {
  std::map<std::string, std::map<std::string, std::string>> out;
  if (!o.torch) return out;
  const std::string path = bench::find_script("", "tools/bench/" + script, argv0);
  const bench::ScriptRun r = bench::run_script(bench::shell_quote(o.python) + " " + bench::shell_quote(path) +
                                               " --device cuda --threads 1 --repeats " + std::to_string(o.repeats) +
                                               " " + args);
  if (!r.error.empty()) std::printf("  PyTorch (%s) unavailable: %s\n", script.c_str(), r.error.c_str());
  else std::printf("  PyTorch: %s\n", r.info.c_str());
  for (const auto& f : r.results)
    if (f.count(key)) out[f.at(key)] = f;
  return out;
}

// "  1234.5" or "       -" when PyTorch gave no figure.
std::string figure(const std::map<std::string, std::map<std::string, std::string>>& torch, const std::string& name,
                   const char* field, double scale, double* value) {
  char buf[32];
  *value = 0;
  if (!torch.count(name) || !torch.at(name).count(field)) return "       -";
  *value = scale * std::atof(torch.at(name).at(field).c_str());
  std::snprintf(buf, sizeof buf, "%8.1f", *value);
  return buf;
}

// "1.23x": how many times faster stpain is; "-" without a PyTorch figure.
std::string speedup(double stpain_speed, double torch_speed) {
  if (!(torch_speed > 0)) return "-";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2fx", stpain_speed / torch_speed);
  return buf;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  examples::Cli cli("gpu_bench", "CUDA backend speed next to PyTorch on the same GPU (ConvNeXt forward, training steps)");
  cli.list_option("--archs", o.archs, "ConvNeXt variants for the forward figures")
      .option("--batch", o.batch, "images per ConvNeXt forward")
      .option("--size", o.size, "image height and width")
      .list_option("--heads", o.heads, "sequence heads for the training-step figures")
      .option("--head-batch", o.head_batch, "sequences per head training step")
      .option("--frames", o.frames, "frames per sequence or clip")
      .option("--features", o.features, "features per frame (ConvNeXt-XLarge: 2048)")
      .list_option("--models", o.models, "landmark networks (bench/stgcn_models.hpp names)")
      .option("--stgcn-batch", o.stgcn_batch, "clips per landmark training step")
      .option("--repeats", o.repeats, "timed calls after one warm-up, best kept")
      .flag("--no-torch", o.torch, "skip the PyTorch figures", false)
      .option("--python", o.python, "Python whose torch has CUDA (runs tools/bench/*_torch.py --device cuda)");
  if (!cli.parse(argc, argv)) return cli.exit_code();
  try {
    std::printf("GPU: %s\n", cuda_backend::device_name().c_str());

    std::printf("\nConvNeXt forward, eval, batch %lld, %lldx%lld (images/s)\n", static_cast<long long>(o.batch),
                static_cast<long long>(o.size), static_cast<long long>(o.size));
    const auto convnext_torch =
        torch_figures(o, argv[0], "convnext_torch.py",
                      "--archs " + bench::join(o.archs) + " --batches " + std::to_string(o.batch) + " --size " + std::to_string(o.size),
                      "arch");
    std::printf("  %-10s %10s %10s %16s\n", "arch", "stpain", "PyTorch", "stpain/PyTorch");
    for (const auto& arch : o.archs) {
      const double ours = static_cast<double>(o.batch) / cuda_backend::convnext_forward_seconds(arch, o.batch, o.size, o.repeats);
      double theirs = 0;
      const std::string t = figure(convnext_torch, arch, "images_per_s", 1.0, &theirs);
      std::printf("  %-10s %10.1f %10s %16s\n", arch.c_str(), ours, t.c_str(), speedup(ours, theirs).c_str());
      std::fflush(stdout);
    }

    std::printf("\nTraining step (forward, cross-entropy, backward, Adam) in ms\n");
    const auto heads_torch = torch_figures(o, argv[0], "lstm_heads_torch.py",
                                           "--heads " + bench::join(o.heads) + " --batch " + std::to_string(o.head_batch) +
                                               " --frames " + std::to_string(o.frames) + " --features " + std::to_string(o.features),
                                           "head");
    const auto stgcn_torch = torch_figures(o, argv[0], "stgcn_torch.py",
                                           "--models " + bench::join(o.models) + " --batch " + std::to_string(o.stgcn_batch) +
                                               " --frames " + std::to_string(o.frames),
                                           "model");
    std::printf("  %-34s %10s %10s %16s\n", "model [input]", "stpain", "PyTorch", "stpain/PyTorch");
    auto row = [&](const std::string& label, double seconds, const std::string& name,
                   const std::map<std::string, std::map<std::string, std::string>>& torch) {
      double theirs = 0;
      const std::string t = figure(torch, name, "step_s", 1e3, &theirs);
      const double ours = 1e3 * seconds;
      std::printf("  %-34s %10.2f %10s %16s\n", label.c_str(), ours, t.c_str(), speedup(1 / ours, theirs > 0 ? 1 / theirs : 0).c_str());
      std::fflush(stdout);
    };
    const std::string seq = " [" + std::to_string(o.head_batch) + "x" + std::to_string(o.frames) + "x" + std::to_string(o.features) + "]";
    for (const auto& h : o.heads)
      row(h + seq, cuda_backend::sequence_head_step_seconds(h, o.head_batch, o.frames, o.features, o.repeats), h, heads_torch);
    const std::string clips = " [" + std::to_string(o.stgcn_batch) + "x" + std::to_string(o.frames) + "x68x2]";
    for (const auto& m : o.models)
      row(m + clips, cuda_backend::stgcn_step_seconds(m, o.stgcn_batch, o.frames, o.repeats), m, stgcn_torch);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gpu_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
