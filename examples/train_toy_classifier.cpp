// The foundation's end-to-end check, until the paper's pipelines exist: makes
// a small set of generated "clips" (20 frames x 16 features; pain clips carry
// an onset -> apex bump on a few features, at random intensity, in noise),
// trains an MLP with Adam, exponential decay and balanced class weights,
// keeps the best checkpoint by validation accuracy, reloads it and reports
// test metrics.
//   bazel run --config=opt //examples:train_toy_classifier -- --help
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "examples/cli.hpp"
#include "stpain/compose/sequential.hpp"
#include "stpain/core/progress.hpp"
#include "stpain/io/state_dict.hpp"
#include "stpain/layers/activations.hpp"
#include "stpain/layers/dropout.hpp"
#include "stpain/layers/linear.hpp"
#include "stpain/train/clip.hpp"
#include "stpain/train/finite.hpp"
#include "stpain/train/loss.hpp"
#include "stpain/train/metrics.hpp"
#include "stpain/train/optim.hpp"
#include "stpain/train/schedule.hpp"

using namespace stpain;

namespace {

constexpr int64_t kFrames = 20, kFeatures = 16;

struct Dataset {
  Tensor<float> x;  // [clips, frames * features]
  std::vector<int64_t> y;
};

// Pain clips (label 1, ~3 in 4 as in PEMF) rise and fall on features 0..3
// between frames 5 and 15; every clip has a per-clip offset and noise.
Dataset make_clips(int64_t clips, uint64_t seed) {
  Generator g(seed);
  Dataset d{Tensor<float>::empty({clips, kFrames * kFeatures}), std::vector<int64_t>(static_cast<size_t>(clips))};
  for (int64_t i = 0; i < clips; ++i) {
    const bool pain = g.bernoulli(0.75);
    d.y[static_cast<size_t>(i)] = pain;
    const double intensity = pain ? g.uniform(0.2, 1.2) : 0.0, offset = g.normal(0, 0.5);
    for (int64_t t = 0; t < kFrames; ++t) {
      const double bump = (t >= 5 && t <= 15) ? std::sin(M_PI * static_cast<double>(t - 5) / 10.0) : 0.0;
      for (int64_t f = 0; f < kFeatures; ++f)
        d.x(i, t * kFeatures + f) = static_cast<float>(offset + g.normal() + (f < 4 ? intensity * bump : 0.0));
    }
  }
  return d;
}

Dataset subset(const Dataset& d, const std::vector<int64_t>& rows) {
  const int64_t width = d.x.size(1);
  Dataset s{Tensor<float>::empty({static_cast<int64_t>(rows.size()), width}), {}};
  for (size_t r = 0; r < rows.size(); ++r) {
    std::copy_n(d.x.data() + rows[r] * width, width, s.x.data() + static_cast<int64_t>(r) * width);
    s.y.push_back(d.y[static_cast<size_t>(rows[r])]);
  }
  return s;
}

// Stratified split into train / validation / test index lists.
std::array<std::vector<int64_t>, 3> stratified_split(const std::vector<int64_t>& y, double val, double test,
                                                     Generator& g) {
  std::array<std::vector<int64_t>, 3> parts;
  for (int64_t cls : {0, 1}) {
    std::vector<int64_t> idx;
    for (size_t i = 0; i < y.size(); ++i)
      if (y[i] == cls) idx.push_back(static_cast<int64_t>(i));
    g.shuffle(idx);
    const auto n_test = static_cast<size_t>(std::round(test * static_cast<double>(idx.size())));
    const auto n_val = static_cast<size_t>(std::round(val * static_cast<double>(idx.size())));
    for (size_t i = 0; i < idx.size(); ++i) parts[i < n_test ? 2 : i < n_test + n_val ? 1 : 0].push_back(idx[i]);
  }
  return parts;
}

using Model = Sequential<Named<"fc1", Linear<cpu>>, GELU<cpu>, Dropout<cpu>, Named<"fc2", Linear<cpu>>>;

Tensor<float> predict_proba(Model& model, const Tensor<float>& x) {
  model.eval();
  auto p = softmax(model.forward(x));
  model.train();
  return p;
}

}  // namespace

int main(int argc, char** argv) {
  int64_t clips = 600, epochs = 40, batch = 16, hidden = 64, seed = 7, threads = 2;
  double lr = 1e-3;
  std::string out_dir = "out/toy_classifier";
  examples::Cli cli("train_toy_classifier",
                    "trains an MLP on generated pain-like clips and reports test metrics (foundation check)");
  cli.option("--clips", clips, "number of generated clips")
      .option("--epochs", epochs, "training epochs")
      .option("--batch", batch, "batch size")
      .option("--hidden", hidden, "hidden units")
      .option("--lr", lr, "initial Adam learning rate (x0.96 every 100 steps)")
      .option("--seed", seed, "seed for data, split and weights")
      .option("--threads", threads, "CPU threads")
      .path_option("--out", out_dir, "output folder (best checkpoint, report JSON)");
  if (!cli.parse(argc, argv)) return cli.exit_code();

  try {
    set_num_threads(static_cast<int>(threads));
    manual_seed(static_cast<uint64_t>(seed));
    std::filesystem::create_directories(out_dir);
    const Dataset all = make_clips(clips, static_cast<uint64_t>(seed));
    Generator split_gen(static_cast<uint64_t>(seed) + 1);
    const auto [train_rows, val_rows, test_rows] = stratified_split(all.y, 0.15, 0.15, split_gen);
    const Dataset train = subset(all, train_rows), val = subset(all, val_rows), test = subset(all, test_rows);
    std::printf("clips: %zu train, %zu validation, %zu test (%.0f%% pain)\n", train.y.size(), val.y.size(),
                test.y.size(), 100.0 * static_cast<double>(std::count(all.y.begin(), all.y.end(), 1)) / static_cast<double>(clips));

    Model model(Linear<cpu>(kFrames * kFeatures, hidden), GELU<cpu>(), Dropout<cpu>(0.1), Linear<cpu>(hidden, 2));
    Adam opt(model, AdamOptions{.lr = lr});
    const ExponentialDecay schedule(lr, 100, 0.96, true);
    const CrossEntropyOptions loss_options{.class_weights = balanced_class_weights(train.y, 2)};
    const std::string best_path = out_dir + "/best.safetensors";
    double best_val = -1;
    int64_t best_epoch = 0;
    Generator shuffle_gen(static_cast<uint64_t>(seed) + 2);
    Progress progress("epochs", epochs, stdout);

    for (int64_t epoch = 1; epoch <= epochs; ++epoch) {
      std::vector<int64_t> order = shuffle_gen.permutation(static_cast<int64_t>(train.y.size()));
      double loss_sum = 0;
      int64_t batches = 0;
      for (size_t start = 0; start < order.size(); start += static_cast<size_t>(batch)) {
        const std::vector<int64_t> rows(order.begin() + static_cast<long>(start),
                                        order.begin() + static_cast<long>(std::min(order.size(), start + static_cast<size_t>(batch))));
        const Dataset b = subset(train, rows);
        const auto loss = softmax_cross_entropy(model.forward(b.x), b.y, loss_options);
        check_finite(loss.loss, "loss at epoch " + std::to_string(epoch) + ", batch " + std::to_string(batches + 1));
        opt.zero_grad();
        model.backward(loss.grad);
        clip_grad_norm(model, 5.0);
        opt.set_lr(schedule.lr(opt.step_count()));
        opt.step();
        loss_sum += loss.loss;
        ++batches;
      }
      const double train_acc = accuracy(train.y, argmax(predict_proba(model, train.x)));
      const double val_acc = accuracy(val.y, argmax(predict_proba(model, val.x)));
      if (val_acc > best_val) {  // model selection on validation only
        best_val = val_acc;
        best_epoch = epoch;
        save_state_dict(model, best_path, {{"epoch", std::to_string(epoch)}});
      }
      char extra[128];
      std::snprintf(extra, sizeof extra, "loss %.4f  train acc %.3f  val acc %.3f  lr %.2e", loss_sum / static_cast<double>(batches),
                    train_acc, val_acc, opt.lr());
      progress.update(epoch, extra);
    }
    progress.finish();

    Model best(Linear<cpu>(kFrames * kFeatures, hidden), GELU<cpu>(), Dropout<cpu>(0.1), Linear<cpu>(hidden, 2));
    load_state_dict(best, best_path);
    const auto proba = predict_proba(best, test.x);
    auto report = classification_report(test.y, argmax(proba), 2, {"no pain", "pain"});
    std::vector<double> pain_scores;
    for (int64_t i = 0; i < proba.size(0); ++i) pain_scores.push_back(proba(i, 1));
    report.roc_auc = roc_auc_score(test.y, pain_scores);
    std::printf("\nbest validation accuracy %.3f at epoch %lld (checkpoint %s)\ntest set:\n%s\n", best_val,
                static_cast<long long>(best_epoch), best_path.c_str(), report.str().c_str());
    write_file_atomically(out_dir + "/report.json", json::dump(report.to_json(), 2) + "\n");
    std::printf("report written to %s/report.json\n", out_dir.c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "train_toy_classifier: %s\n", e.what());
    return 1;
  }
  return 0;
}
