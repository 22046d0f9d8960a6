// Training speed of the landmark networks (include/stpain/models/stgcn.hpp
// over the authors' 68-point face mesh) next to the same PyTorch models on
// the same machine, in the same run: one training step, and a full training
// run (epochs of training steps plus the validation pass, as fit() runs them).
//   bazel run --config=opt //bench:stgcn_bench -- [--models lstm-recurrent] [--full-run] [--help]
//
// In every round the program runs tools/bench/stgcn_torch.py (Debian's
// /usr/bin/python3 with python3-torch; the networks are the PyTorch
// re-implementations of the parity tests, tools/fixtures/stgcn_models.py, at
// full size) and then times stpain in this process, so both see the same load
// and environment. Step figures are the best of --repeats steps after a
// warm-up, then the best round.
//
// The run: --clips clips split 80/20 (the paper's protocol) into training and
// validation clips; an epoch is ceil(train / batch) training steps in a
// shuffled order and one evaluation pass over the validation clips. stpain's
// epoch is measured by running fit() itself for --epochs epochs (--full-run:
// all of --run-epochs); PyTorch's is projected from its step and evaluation
// times (--torch-epochs N measures N of its epochs instead; slow).
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "bench/bench_common.hpp"
#include "bench/stgcn_models.hpp"
#include "examples/cli.hpp"
#include "stpain/core/random.hpp"
#include "stpain/graph/landmark_graphs.hpp"
#include "stpain/models/stgcn.hpp"
#include "stpain/train/trainer.hpp"

using namespace stpain;
using bench::kModels;
using bench::parse_model;
using bench::ModelKind;
using bench::with_model;

namespace {

struct Options : bench::ComparisonOptions {
  Options() { repeats = 5; }
  std::vector<std::string> models = {"lstm-recurrent", "lstm-averaging"};
  int64_t batch = 10, frames = 20;
  int64_t clips = 272;
  int64_t epochs = 2;       // stpain epochs measured for the projection
  int64_t run_epochs = 150; // the run projected (or, with --full-run, run)
  bool full_run = false;
  int64_t torch_epochs = 0;
  bool profile = false;
};

Tensor<float> random_clips(int64_t n, int64_t frames, uint64_t seed) {
  return bench::random_normal({n, frames, 68, 2}, seed);
}

Tensor<float> random_tensor(const Shape& shape) { return bench::random_normal(shape, 5); }

// ---- Per-layer profile: the block's layers, built alone at the step's shapes ----

template <class Layer>
void time_layer(const char* what, Layer& layer, const Tensor<float>& x, int repeats, double& total_ms) {
  layer.train(true);
  Tensor<float> y = layer.forward(x);
  const Tensor<float> dy = bench::random_normal(y.shape(), 3);
  double f = 1e30, b = 1e30;
  for (int r = 0; r < repeats; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    y = layer.forward(x);
    f = std::min(f, bench::seconds_since(t0));
    t0 = std::chrono::steady_clock::now();
    layer.backward(dy);
    b = std::min(b, bench::seconds_since(t0));
  }
  total_ms += 1e3 * (f + b);
  std::printf("    %-48s %-18s forward %7.2f ms  backward %7.2f ms\n", what, x.shape().str().c_str(), 1e3 * f, 1e3 * b);
}

void profile(const Options& o, const std::string& name) {
  const ModelKind k = parse_model(name);
  const int64_t n = o.batch, t = o.frames, v = 68;
  if (k.block == BlockKind::stgcn) {
    std::printf("  (no per-layer profile for the ST-GCN block)\n");
    return;
  }
  const auto masks = PaperSTGCNBlock<cpu>::hop_masks(GraphSpec::of<FaceMesh68>());
  double total = 0;
  for (int64_t in : {int64_t{2}, int64_t{48}}) {
    std::printf("  block with %lld input channels (%s):\n", static_cast<long long>(in), in == 2 ? "block 0" : "blocks 1, 2");
    manual_seed(1);
    TemporalConv<cpu> temporal(in, 64, 9);
    Linear<cpu> proj0(in + 64, 64), proj2(64, 68);
    NeighbourAttention<cpu> attention(masks, 68,
                                      k.block == BlockKind::paper ? AttentionMode::recurrent : AttentionMode::averaging);
    TemporalConv<cpu> b1(136, 16, 9), b2(16, 16, 15), b3(16, 16, 20);
    double block = 0;
    time_layer("temporal TemporalConv(k 9)", temporal, random_tensor({n, t, v, in}), o.repeats, block);
    time_layer("proj.0 Linear", proj0, random_tensor({n, t, v, in + 64}), o.repeats, block);
    time_layer("proj.2 Linear", proj2, random_tensor({n, t, v, 64}), o.repeats, block);
    time_layer(attention.describe().c_str(), attention, random_tensor({n, t, v, 68}), o.repeats, block);
    time_layer("branch1 TemporalConv(136 -> 16, k 9)", b1, random_tensor({n, t, v, 136}), o.repeats, block);
    time_layer("branch2 TemporalConv(16 -> 16, k 15)", b2, random_tensor({n, t, v, 16}), o.repeats, block);
    time_layer("branch3 TemporalConv(16 -> 16, k 20)", b3, random_tensor({n, t, v, 16}), o.repeats, block);
    std::printf("    %-67s %7.2f ms (x%d)\n", "block's layers", block, in == 2 ? 1 : 2);
    total += in == 2 ? block : 2 * block;
  }
  if (k.lstm) {
    manual_seed(1);
    LSTM<cpu> l1(68 * 48, 15, true), l2(15, 20, false);
    std::printf("  head:\n");
    time_layer("lstm1 LSTM(3264, 15)", l1, random_tensor({n, t, 68 * 48}), o.repeats, total);
    time_layer("lstm2 LSTM(15, 20, last state)", l2, random_tensor({n, t, 15}), o.repeats, total);
  }
  std::printf("    %-67s %7.2f ms (the step adds ReLUs, dropout, concatenations, residuals, the loss and Adam)\n",
              "layers in all", total);
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  examples::Cli cli("stgcn_bench",
                    "training speed of STGCN / STGCN-LSTM over the 68-point face mesh, stpain next to the same\n"
                    "PyTorch models (tools/bench/stgcn_torch.py) in the same run");
  cli.list_option("--models", o.models, "comma-separated, from the list below")
      .option("--batch", o.batch, "clips per training step")
      .option("--frames", o.frames, "frames per clip")
      .option("--clips", o.clips, "clips of the training run, split 80/20 into training and validation")
      .option("--epochs", o.epochs, "stpain epochs run with fit() to measure the time per epoch (0: no run)")
      .option("--run-epochs", o.run_epochs, "the run whose time is projected: this many epochs")
      .flag("--full-run", o.full_run,
            "run all --run-epochs epochs with fit() instead of projecting (first model only of --models unless more "
            "are listed; about 150 x the epoch time each)")
      .option("--torch-epochs", o.torch_epochs,
              "also measure this many PyTorch epochs (0: project them from its step and eval times)")
      .flag("--profile", o.profile, "also print stpain's time per layer (forward, backward) at the step's shapes")
      .epilogue(
          "models:\n"
          "  lstm-recurrent    STGCN-LSTM, the paper's block with recurrent attention (default block)\n"
          "  lstm-averaging    STGCN-LSTM, the block with neighbour averaging (the authors' final code)\n"
          "  pooled-recurrent  STGCN (pooled -> Linear), recurrent attention\n"
          "  pooled-averaging  STGCN, neighbour averaging\n"
          "  lstm-yan          STGCN-LSTM with Yan et al.'s ST-GCN blocks\n"
          "Sizes are stpain's defaults (STGCNOptions, PaperSTGCNBlock::Options, the authors' code): 64 temporal "
          "channels\n(k 9), 64 hidden, 68 node features, 3 x 16 branch channels (k 9, 15, 20), dropout 0.25, LSTM 15 "
          "and 20.");
  o.add_options(cli, "tools/bench/stgcn_torch.py", "torch");
  if (!cli.parse(argc, argv)) return cli.exit_code();
  o.make_usable();
  // Values the run can use: at least one step, two clips to split.
  o.batch = std::max<int64_t>(1, o.batch);
  o.frames = std::max<int64_t>(1, o.frames);
  o.clips = std::max<int64_t>(2, o.clips);
  o.epochs = std::max<int64_t>(0, o.epochs);
  o.run_epochs = std::max<int64_t>(1, o.run_epochs);
  o.torch_epochs = std::max<int64_t>(0, o.torch_epochs);
  for (const auto& m : o.models)
    if (std::find(kModels.begin(), kModels.end(), m) == kModels.end()) {
      std::fprintf(stderr, "stgcn_bench: unknown model '%s' (try --help)\n", m.c_str());
      return 2;
    }

  set_num_threads(o.threads);
  const int64_t train_clips = o.clips - o.clips / 5, val_clips = o.clips - train_clips;  // 80/20
  const int64_t steps_per_epoch = (train_clips + o.batch - 1) / o.batch;
  std::printf("STGCN training, %lld frames x 68 points, batch %lld, %d thread%s; run: %lld clips = %lld training + "
              "%lld validation, %lld steps per epoch, %lld epochs\n",
              static_cast<long long>(o.frames), static_cast<long long>(o.batch), o.threads, o.threads > 1 ? "s" : "",
              static_cast<long long>(o.clips), static_cast<long long>(train_clips), static_cast<long long>(val_clips),
              static_cast<long long>(steps_per_epoch), static_cast<long long>(o.run_epochs));
  std::printf("  OPENBLAS_CORETYPE=%s (both processes see the same environment)\n", bench::openblas_coretype());
  bench::print_load("at start");

  const Tensor<float> x = random_clips(o.batch, o.frames, 11);
  const std::vector<int64_t> y = bench::alternating_labels(o.batch);
  const Tensor<float> run_x = random_clips(o.clips, o.frames, 12);
  const std::vector<int64_t> run_y = bench::alternating_labels(o.clips);
  std::vector<int64_t> train_rows, val_rows;
  for (int64_t i = 0; i < o.clips; ++i) (i < train_clips ? train_rows : val_rows).push_back(i);
  const LabelledSet all{run_x, run_y};
  const LabelledSet train = all.rows(train_rows), val = all.rows(val_rows);

  struct Figures {
    double step = 1e30, epoch = 1e30;
    int64_t params = 0, torch_params = 0;
    std::optional<double> torch_step, torch_eval, torch_epoch;
  };
  std::map<std::string, Figures> fig;
  const std::string script = o.script(argv[0]);
  std::string torch_info, torch_error;
  auto keep_min = [](std::optional<double>& slot, double v) { slot = std::min(slot.value_or(1e30), v); };

  for (int round = 1; round <= o.rounds; ++round) {
    if (o.torch && torch_error.empty()) {
      if (o.wait_idle > 0) bench::wait_until_idle(o.wait_idle);
      const bench::ScriptRun r = bench::run_script(
          bench::shell_quote(o.python) + " " + bench::shell_quote(script) + " --models " + bench::join(o.models) +
          " --threads " +
          std::to_string(o.threads) + " --batch " + std::to_string(o.batch) + " --frames " + std::to_string(o.frames) +
          " --repeats " + std::to_string(o.repeats) + " --eval-batch " + std::to_string(val_clips) +
          (o.torch_epochs > 0 && round == 1
               ? " --epochs " + std::to_string(o.torch_epochs) + " --train-clips " + std::to_string(train_clips)
               : std::string()));
      if (torch_info.empty()) torch_info = r.info;
      for (const auto& f : r.results) {
        if (!f.count("model") || !f.count("step_s")) continue;
        Figures& F = fig[f.at("model")];
        keep_min(F.torch_step, std::atof(f.at("step_s").c_str()));
        if (f.count("params")) F.torch_params = std::atoll(f.at("params").c_str());
        if (f.count("eval_s")) keep_min(F.torch_eval, std::atof(f.at("eval_s").c_str()));
        if (f.count("run_s") && f.count("epochs"))
          keep_min(F.torch_epoch, std::atof(f.at("run_s").c_str()) / std::atof(f.at("epochs").c_str()));
        std::printf("  round %d/%d  %-16s PyTorch step %8.1f ms", round, o.rounds, f.at("model").c_str(),
                    1e3 * std::atof(f.at("step_s").c_str()));
        if (f.count("eval_s")) std::printf("   eval of %lld clips %8.1f ms", static_cast<long long>(val_clips),
                                           1e3 * std::atof(f.at("eval_s").c_str()));
        std::printf("\n");
      }
      if (!r.error.empty()) torch_error = r.error;
    }
    if (o.wait_idle > 0) bench::wait_until_idle(o.wait_idle);
    for (const auto& name : o.models) {
      manual_seed(1);
      with_model(name, [&](auto& net) {
        net.train(true);
        fig[name].params = bench::parameter_count(net);
        Adam opt(net, bench::kFitAdam);
        const double s = bench::best_seconds(o.repeats, [&] { bench::train_step(net, opt, x, y); });
        Figures& F = fig[name];
        F.step = std::min(F.step, s);
        std::printf("  round %d/%d  %-16s stpain  step %8.1f ms\n", round, o.rounds, name.c_str(), 1e3 * s);
        std::fflush(stdout);
      });
    }
  }
  if (!torch_error.empty()) std::printf("  PyTorch figures incomplete: %s\n", torch_error.c_str());

  // stpain's epochs: fit() itself, as train_stgcn runs it (batch order shuffled, validation every epoch).
  for (size_t m = 0; m < o.models.size(); ++m) {
    const std::string& name = o.models[m];
    const int64_t epochs = o.full_run ? o.run_epochs : o.epochs;
    if (epochs == 0) continue;
    manual_seed(1);
    with_model(name, [&](auto& net) {
      const auto t0 = std::chrono::steady_clock::now();
      const FitResult r = fit(net, train, val, {.epochs = epochs, .batch = o.batch});
      const double s = bench::seconds_since(t0);
      double best_epoch = 1e30;
      for (const auto& e : r.history) best_epoch = std::min(best_epoch, e.seconds);
      fig[name].epoch = o.full_run ? s / static_cast<double>(epochs) : best_epoch;
      std::printf("  stpain %-16s fit(): %lld epoch%s in %.1f s (%.2f s per epoch, fastest %.2f s)%s\n", name.c_str(),
                  static_cast<long long>(epochs), epochs > 1 ? "s" : "", s, s / static_cast<double>(epochs), best_epoch,
                  o.full_run ? "  <- the full run, measured" : "");
      std::fflush(stdout);
    });
  }

  std::printf("\nTraining step (best of %d round%s, each the best of %d steps after a warm-up), ms:\n", o.rounds,
              o.rounds > 1 ? "s" : "", o.repeats);
  std::printf("%-17s %10s %11s %8s %11s\n", "model", "stpain", "PyTorch", "ratio", "parameters");
  for (const auto& name : o.models) {
    const Figures& F = fig[name];
    std::printf("%-17s %10.1f ", name.c_str(), 1e3 * F.step);
    if (F.torch_step) std::printf("%11.1f %7.2fx ", 1e3 * *F.torch_step, *F.torch_step / F.step);
    else std::printf("%11s %8s ", "n/a", "n/a");
    std::printf("%11lld", static_cast<long long>(F.params));
    if (F.torch_params && F.torch_params != F.params)
      std::printf("  (PyTorch's model has %lld: not the same model)", static_cast<long long>(F.torch_params));
    std::printf("\n");
  }
  std::printf("  ratio = PyTorch time / stpain time (above 1: stpain is faster); target (issue 5): >= 3x\n");

  if (o.full_run || o.epochs > 0) {
  std::printf("\n%lld-epoch run on %lld clips (%lld training steps + validation of %lld clips per epoch):\n",
              static_cast<long long>(o.run_epochs), static_cast<long long>(o.clips),
              static_cast<long long>(steps_per_epoch), static_cast<long long>(val_clips));
  std::printf("%-17s %12s %14s %14s %16s %8s\n", "model", "stpain s/ep", "stpain run", "PyTorch s/ep", "PyTorch run",
              "ratio");
  for (const auto& name : o.models) {
    const Figures& F = fig[name];
    const double run = F.epoch * static_cast<double>(o.run_epochs);
    std::printf("%-17s %12.2f %8.0f s %s ", name.c_str(), F.epoch, run, o.full_run ? "(ran) " : "(proj)");
    std::optional<double> te = F.torch_epoch;
    bool projected = false;
    if (!te && F.torch_step && F.torch_eval) {
      // ceil(train / batch) steps (the last one partial, counted as full) and one validation pass.
      te = static_cast<double>(steps_per_epoch) * *F.torch_step + *F.torch_eval;
      projected = true;
    }
    if (te)
      std::printf("%14.2f %9.0f s %s %7.2fx\n", *te, *te * static_cast<double>(o.run_epochs),
                  projected ? "(proj)" : "(meas)", *te / F.epoch);
    else
      std::printf("%14s %16s %8s\n", "n/a", "n/a", "n/a");
  }
  std::printf("  stpain: %s; PyTorch: %s.\n  Target (issue 5): the %lld-epoch run under 2 minutes (120 s).\n",
              o.full_run ? "the whole run measured with fit()" : "the fastest of the epochs run with fit(), x epochs",
              o.torch_epochs > 0 ? "measured epochs (x epochs)"
                                 : "steps per epoch x its step time + its validation pass (x epochs)",
              static_cast<long long>(o.run_epochs));
  std::printf("  (run time with hours: ");
  for (const auto& name : o.models) std::printf("%s %s  ", name.c_str(), bench::hms(fig[name].epoch * static_cast<double>(o.run_epochs)).c_str());
  std::printf(")\n");
  }
  if (!torch_info.empty()) std::printf("  PyTorch run: %s\n", torch_info.c_str());
  bench::print_load("at the end");

  if (o.profile) {
    std::printf("\nstpain per layer at the step's shapes (best of %d, each layer built alone):\n", o.repeats);
    for (const auto& name : o.models) {
      std::printf(" %s\n", name.c_str());
      profile(o, name);
    }
  }
  return 0;
}
