#include "stpain/train/trainer.hpp"

#include <catch2/catch.hpp>

#include <filesystem>

#include "stpain/compose/sequential.hpp"
#include "stpain/layers/activations.hpp"
#include "stpain/layers/linear.hpp"

using namespace stpain;

namespace {
using Mlp = Sequential<Linear<cpu>, ReLU<cpu>, Linear<cpu>>;

// Two Gaussian blobs, 1 in 4 of class 0.
LabelledSet blobs(int64_t n, uint64_t seed, double separation) {
  Generator g(seed);
  LabelledSet s{Tensor<float>::empty({n, 6}), {}};
  for (int64_t i = 0; i < n; ++i) {
    const int64_t label = g.uniform() < 0.75;
    s.y.push_back(label);
    for (int c = 0; c < 6; ++c) s.x(i, c) = static_cast<float>(g.normal() + separation * static_cast<double>(label) * (c < 2));
  }
  return s;
}
}  // namespace

TEST_CASE("fit learns, selects the best validation epoch and restores its weights") {
  manual_seed(1);
  Mlp model(Linear<cpu>(6, 16), ReLU<cpu>(), Linear<cpu>(16, 2));
  const auto train = blobs(200, 1, 3.0), val = blobs(60, 2, 3.0);
  const std::string ckpt = (std::filesystem::temp_directory_path() / "fit_best.safetensors").string();
  int64_t callbacks = 0;
  const FitResult r = fit(model, train, val,
                          {.epochs = 12, .batch = 16, .lr = 3e-3, .decay_steps = 20, .checkpoint = ckpt,
                           .on_epoch = [&](int64_t, const std::string& line) {
                             ++callbacks;
                             CHECK_THAT(line, Catch::Contains("val loss"));
                           }});
  CHECK(callbacks == 12);
  REQUIRE(r.history.size() == 12);
  CHECK(r.history.back().train_loss < r.history.front().train_loss);
  CHECK(r.best_val_accuracy >= 0.9);
  double best = 0;
  for (const auto& e : r.history) best = std::max(best, e.val_accuracy);
  CHECK(r.best_val_accuracy == best);
  for (const auto& e : r.history)  // among the best accuracies, the lowest loss
    if (e.val_accuracy == best) CHECK(e.val_loss >= r.best_val_loss);
  // The model now holds the best epoch's weights: its validation accuracy is the best one.
  CHECK(accuracy(val.y, argmax(predict_probabilities(model, val.x))) == Approx(r.best_val_accuracy));
  Mlp reloaded(Linear<cpu>(6, 16), ReLU<cpu>(), Linear<cpu>(16, 2));
  load_state_dict(reloaded, ckpt);
  CHECK(predict_probabilities(reloaded, val.x).to_vector() == predict_probabilities(model, val.x).to_vector());
  // The learning rate decays per batch (staircase): 13 batches per epoch, the
  // last of 156 steps used 3e-3 * 0.96^floor(155 / 20).
  CHECK(r.history.back().lr == Approx(3e-3 * std::pow(0.96, 7)));
}

TEST_CASE("without a validation set fit keeps the last epoch") {
  manual_seed(2);
  Mlp model(Linear<cpu>(6, 8), ReLU<cpu>(), Linear<cpu>(8, 2));
  const auto train = blobs(80, 5, 3.0);
  const FitResult r = fit(model, train, LabelledSet{Tensor<float>({0, 6}), {}}, {.epochs = 4, .batch = 16, .lr = 3e-3});
  CHECK(r.best_epoch == 4);
  CHECK(std::isnan(r.history[0].val_accuracy));
}

TEST_CASE("fit stops with a clear message when the loss is not finite") {
  Mlp model(Linear<cpu>(6, 4), ReLU<cpu>(), Linear<cpu>(4, 2));
  auto train = blobs(20, 3, 1.0);
  train.x[5] = NAN;
  CHECK_THROWS_WITH(fit(model, train, blobs(8, 4, 1.0), {.epochs = 1, .batch = 32}),
                    Catch::Contains("loss at epoch 1, batch 1"));
}
