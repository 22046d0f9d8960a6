// Training-step time of the four sequence heads (LSTM, Bi-LSTM, attention
// LSTM, stacked; include/stpain/models/sequence_heads.hpp) next to the same
// PyTorch models on the same machine, in the same run.
//   bazel run --config=opt //bench:lstm_heads_bench -- [--heads lstm,stacked] [--rounds 3] [--help]
//
// A step is what fit() does per batch: forward in train mode, cross-entropy,
// zero_grad, backward, Adam. In every round the program runs
// tools/bench/lstm_heads_torch.py (Debian's /usr/bin/python3 with
// python3-torch) for all heads, then times stpain's heads in this process:
// both see the same load and environment (OPENBLAS_CORETYPE included). Each
// figure is the best of --repeats steps after a warm-up, then the best round.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "bench/bench_common.hpp"
#include "examples/cli.hpp"
#include "stpain/core/random.hpp"
#include "stpain/models/sequence_heads.hpp"

using namespace stpain;

namespace {

const std::vector<std::string> kHeads = {"lstm", "bilstm", "attention", "stacked"};

struct Options : bench::ComparisonOptions {
  Options() { repeats = 10; }
  std::vector<std::string> heads = kHeads;
  int64_t batch = 8, frames = 20, features = 2048;
  bool profile = false;
};

// Time per layer of the head (forward, then backward), averaged over `steps` steps.
template <class Head>
void profile_head(Head& head, const Tensor<float>& x, std::span<const int64_t> y, int steps) {
  constexpr size_t L = Head::size;
  std::vector<double> fwd(L, 0), bwd(L, 0);
  std::vector<std::string> names(L);
  Adam opt(head, bench::kFitAdam);
  double loss_s = 0, adam_s = 0;
  for (int s = 0; s <= steps; ++s) {
    const bool keep = s > 0;  // the first step warms up
    std::vector<Tensor<float>> acts{x};
    [&]<size_t... I>(std::index_sequence<I...>) {
      (
          [&] {
            const auto t0 = std::chrono::steady_clock::now();
            acts.push_back(head.template get<I>().forward(acts.back()));
            if (keep) fwd[I] += bench::seconds_since(t0);
            using Layer = std::decay_t<decltype(head.template get<I>())>;
            if constexpr (requires(const Layer& l) { l.describe(); })
              names[I] = head.template get<I>().describe();
            else
              names[I] = "layer " + std::to_string(I);
          }(),
          ...);
    }(std::make_index_sequence<L>{});
    auto t0 = std::chrono::steady_clock::now();
    const auto loss = softmax_cross_entropy(acts.back(), y);
    opt.zero_grad();
    if (keep) loss_s += bench::seconds_since(t0);
    Tensor<float> d = loss.grad;
    [&]<size_t... I>(std::index_sequence<I...>) {
      (
          [&] {
            constexpr size_t J = L - 1 - I;
            const auto t1 = std::chrono::steady_clock::now();
            d = head.template get<J>().backward(d);
            if (keep) bwd[J] += bench::seconds_since(t1);
          }(),
          ...);
    }(std::make_index_sequence<L>{});
    t0 = std::chrono::steady_clock::now();
    opt.step();
    if (keep) adam_s += bench::seconds_since(t0);
  }
  double total = loss_s + adam_s;
  for (size_t i = 0; i < L; ++i) total += fwd[i] + bwd[i];
  for (size_t i = 0; i < L; ++i)
    std::printf("    %-52s forward %8.2f ms  backward %8.2f ms  (%4.1f%%)\n", names[i].c_str(), 1e3 * fwd[i] / steps,
                1e3 * bwd[i] / steps, 100 * (fwd[i] + bwd[i]) / total);
  std::printf("    %-52s %8.2f ms\n", "loss + zero_grad", 1e3 * loss_s / steps);
  std::printf("    %-52s %8.2f ms\n", "Adam step", 1e3 * adam_s / steps);
  std::printf("    %-52s %8.2f ms\n", "total", 1e3 * total / steps);
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  examples::Cli cli("lstm_heads_bench",
                    "training-step time (forward + backward + Adam) of the four sequence heads, stpain next to\n"
                    "the same PyTorch models (tools/bench/lstm_heads_torch.py) in the same run");
  cli.list_option("--heads", o.heads, "comma-separated: lstm, bilstm, attention, stacked")
      .option("--batch", o.batch, "sequences per step")
      .option("--frames", o.frames, "time steps")
      .option("--features", o.features, "features per step (the default is ConvNeXt-XLarge's)")
      .flag("--profile", o.profile, "also print stpain's time per layer (forward and backward) of each head")
      .epilogue("Sizes are stpain's defaults (SequenceHeadOptions, the authors' Keras code): 128 units in the first "
                "recurrent\nlayer (per direction), 64 in the second and third, Dense 128, 2 classes.");
  o.add_options(cli, "tools/bench/lstm_heads_torch.py", "torch");
  if (!cli.parse(argc, argv)) return cli.exit_code();
  o.make_usable();
  o.batch = std::max<int64_t>(1, o.batch);
  o.frames = std::max<int64_t>(1, o.frames);
  o.features = std::max<int64_t>(1, o.features);
  for (const auto& h : o.heads)
    if (std::find(kHeads.begin(), kHeads.end(), h) == kHeads.end()) {
      std::fprintf(stderr, "lstm_heads_bench: unknown head '%s' (lstm, bilstm, attention or stacked)\n", h.c_str());
      return 2;
    }

  set_num_threads(o.threads);
  const SequenceHeadOptions ho{.input_size = o.features};
  std::printf("Sequence heads, training step (forward + backward + Adam), batch %lld x %lld steps x %lld features, "
              "%d thread%s\n",
              static_cast<long long>(o.batch), static_cast<long long>(o.frames), static_cast<long long>(o.features),
              o.threads, o.threads > 1 ? "s" : "");
  std::printf("  OPENBLAS_CORETYPE=%s (both processes see the same environment)\n", bench::openblas_coretype());
  bench::print_load("at start");

  const Tensor<float> x = bench::random_normal({o.batch, o.frames, o.features}, 7);
  const std::vector<int64_t> y = bench::alternating_labels(o.batch);
  const std::string script = o.script(argv[0]);
  std::map<std::string, double> best, torch_best;
  std::map<std::string, int64_t> params, torch_params;
  std::string torch_info, torch_error;
  for (int round = 1; round <= o.rounds; ++round) {
    if (o.torch && torch_error.empty()) {
      if (o.wait_idle > 0) bench::wait_until_idle(o.wait_idle);
      const bench::ScriptRun r = bench::run_script(
          bench::shell_quote(o.python) + " " + bench::shell_quote(script) + " --heads " + bench::join(o.heads) +
          " --threads " +
          std::to_string(o.threads) + " --batch " + std::to_string(o.batch) + " --frames " + std::to_string(o.frames) +
          " --features " + std::to_string(o.features) + " --repeats " + std::to_string(o.repeats));
      if (torch_info.empty()) torch_info = r.info;
      for (const auto& f : r.results)
        if (f.count("head") && f.count("step_s")) {
          const double s = std::atof(f.at("step_s").c_str());
          auto [it, fresh] = torch_best.emplace(f.at("head"), s);
          if (!fresh) it->second = std::min(it->second, s);
          if (f.count("params")) torch_params[f.at("head")] = std::atoll(f.at("params").c_str());
          std::printf("  round %d/%d  %-9s PyTorch %8.2f ms\n", round, o.rounds, f.at("head").c_str(), 1e3 * s);
        }
      if (!r.error.empty()) torch_error = r.error;
    }
    if (o.wait_idle > 0) bench::wait_until_idle(o.wait_idle);
    for (const auto& name : o.heads) {
      manual_seed(1);
      with_sequence_head(name, ho, [&](auto head) {
        head.train(true);
        params[name] = bench::parameter_count(head);
        Adam opt(head, bench::kFitAdam);
        const double s = bench::best_seconds(o.repeats, [&] { bench::train_step(head, opt, x, y); });
        auto [it, fresh] = best.emplace(name, s);
        if (!fresh) it->second = std::min(it->second, s);
        std::printf("  round %d/%d  %-9s stpain  %8.2f ms\n", round, o.rounds, name.c_str(), 1e3 * s);
        std::fflush(stdout);
      });
    }
  }
  if (!torch_error.empty()) std::printf("  PyTorch figures incomplete: %s\n", torch_error.c_str());

  std::printf("\nBest of %d round%s, each the best of %d steps after a warm-up (ms per training step):\n", o.rounds,
              o.rounds > 1 ? "s" : "", o.repeats);
  std::printf("%-10s %12s %12s %8s %14s %12s\n", "head", "stpain ms", "PyTorch ms", "ratio", "stpain seq/s", "parameters");
  for (const auto& name : o.heads) {
    const double s = best.at(name);
    std::printf("%-10s %12.2f ", name.c_str(), 1e3 * s);
    if (torch_best.count(name))
      std::printf("%12.2f %7.2fx ", 1e3 * torch_best.at(name), torch_best.at(name) / s);
    else
      std::printf("%12s %8s ", "n/a", "n/a");
    std::printf("%14.1f %12lld", static_cast<double>(o.batch) / s, static_cast<long long>(params[name]));
    if (torch_params.count(name) && torch_params.at(name) != params[name])
      std::printf("  (PyTorch's model has %lld: not the same model)", static_cast<long long>(torch_params.at(name)));
    std::printf("\n");
  }
  std::printf("  ratio = PyTorch time / stpain time (above 1: stpain is faster); target (issue 4): >= 2x\n");
  std::printf("  parameters: trainable values of stpain's head (PyTorch's is checked equal when it reports it)\n");
  if (!torch_info.empty()) std::printf("  PyTorch run: %s\n", torch_info.c_str());
  bench::print_load("after the rounds");

  if (o.profile) {
    std::printf("\nstpain per layer (mean of %d steps after a warm-up):\n", o.repeats);
    for (const auto& name : o.heads) {
      std::printf("  %s\n", name.c_str());
      manual_seed(1);
      with_sequence_head(name, ho, [&](auto head) {
        head.train(true);
        profile_head(head, x, y, o.repeats);
      });
    }
  }
  return 0;
}
