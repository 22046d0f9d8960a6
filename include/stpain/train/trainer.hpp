#pragma once
// The training loop both experiments share: mini-batches of clips, Adam with
// an exponential-decay schedule stepped per batch, optional class weights,
// gradient clipping, NaN/Inf checks, evaluation on a validation set after
// every epoch and model selection on it alone (the best epoch's weights are
// kept and restored at the end, and optionally checkpointed). With an empty
// validation set (the paper's 80/20 protocol) the last epoch is kept.
//
//   FitResult r = fit(model, train, validation, FitOptions{.epochs = 150, .batch = 8});
#include <chrono>
#include <cmath>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "stpain/backend/transfer.hpp"
#include "stpain/io/state_dict.hpp"
#include "stpain/train/clip.hpp"
#include "stpain/train/finite.hpp"
#include "stpain/train/loss.hpp"
#include "stpain/train/metrics.hpp"
#include "stpain/train/optim.hpp"
#include "stpain/train/schedule.hpp"

namespace stpain {

// Samples for classification: x [N, ...] and one label per sample.
struct LabelledSet {
  Tensor<float> x;
  std::vector<int64_t> y;

  int64_t size() const { return static_cast<int64_t>(y.size()); }
  // The rows `rows` of x, in that order, and their labels.
  LabelledSet rows(const std::vector<int64_t>& rows) const {
    const int64_t width = x.numel() / std::max<int64_t>(x.size(0), 1);
    LabelledSet s{Tensor<float>::empty(x.shape().with(0, static_cast<int64_t>(rows.size()))), {}};
    for (size_t r = 0; r < rows.size(); ++r) {
      STPAIN_CHECK(rows[r] >= 0 && rows[r] < x.size(0), ShapeError, "LabelledSet.rows: row ", rows[r], " of ", x.size(0));
      std::copy_n(x.data() + rows[r] * width, width, s.x.data() + static_cast<int64_t>(r) * width);
      s.y.push_back(y[static_cast<size_t>(rows[r])]);
    }
    return s;
  }
};

enum class ClassWeighting { none, balanced };

struct FitOptions {
  int64_t epochs = 150;
  int64_t batch = 8;
  double lr = 1e-4;
  int64_t decay_steps = 1000;  // lr * decay_rate^(step / decay_steps), stepped per batch
  double decay_rate = 0.96;
  bool staircase = true;
  bool keras_adam = true;       // Keras' Adam (eps 1e-7 inside the bias correction), as the authors'
                                // code; false: torch.optim.Adam (eps 1e-8)
  double weight_decay = 0.0;
  ClassWeighting class_weights = ClassWeighting::balanced;
  double clip_norm = 0.0;       // 0: no clipping
  uint64_t seed = 2001;         // batch order
  int64_t num_classes = 2;
  std::string checkpoint;       // where the best weights are saved ("" : memory only)
  std::map<std::string, std::string> checkpoint_metadata;  // saved with them (how to rebuild the model)
  // Called after every epoch with a one-line summary (progress display).
  std::function<void(int64_t epoch, const std::string& line)> on_epoch;
};

struct EpochRecord {
  int64_t epoch = 0;
  double train_loss = 0, train_accuracy = 0, val_loss = 0, val_accuracy = 0, lr = 0, seconds = 0;
};

struct FitResult {
  std::vector<EpochRecord> history;
  int64_t best_epoch = 0;
  double best_val_accuracy = -1;
  double best_val_loss = INFINITY;
};

namespace detail {
// x on the model's backend B: itself on cpu, a copy elsewhere.
template <class B>
Tensor<float, B> on_backend(const Tensor<float>& x) {
  if constexpr (std::is_same_v<B, cpu>)
    return x;
  else
    return to<B>(x);
}

template <class Model>
std::pair<double, Tensor<float>> evaluate_in_batches(Model& model, const LabelledSet& data, int64_t batch,
                                                    const CrossEntropyOptions& loss_options) {
  using B = typename Model::backend;
  Tensor<float> probabilities;
  double loss = 0;
  for (int64_t s = 0; s < data.size(); s += batch) {
    const int64_t e = std::min(data.size(), s + batch);
    const Tensor<float, B> logits = model.forward(on_backend<B>(data.x.slice(s, e)));
    const std::vector<int64_t> labels(data.y.begin() + s, data.y.begin() + e);
    loss += softmax_cross_entropy(logits, labels, loss_options).loss * static_cast<double>(e - s);
    const Tensor<float> p = to_host(softmax(logits));
    if (!probabilities.defined()) probabilities = Tensor<float>::empty({data.size(), p.size(1)});
    std::copy(p.begin(), p.end(), probabilities.data() + s * p.size(1));
  }
  return {loss / static_cast<double>(std::max<int64_t>(data.size(), 1)), probabilities};
}
}  // namespace detail

// Class probabilities [N, classes] of the model in evaluation mode, on the
// host whatever the model's backend.
template <class Model>
Tensor<float> predict_probabilities(Model& model, const Tensor<float>& x, int64_t batch = 64) {
  const bool was_training = model.is_training();
  model.train(false);
  LabelledSet data{x, std::vector<int64_t>(static_cast<size_t>(x.size(0)), 0)};
  auto p = detail::evaluate_in_batches(model, data, batch, {}).second;
  model.train(was_training);
  return p;
}

// The data stay on the host; each batch is copied to the model's backend.
template <class Model>
FitResult fit(Model& model, const LabelledSet& train, const LabelledSet& validation, const FitOptions& o) {
  using B = typename Model::backend;
  STPAIN_CHECK(train.size() > 0, Error, "fit: no training samples");
  const bool select = validation.size() > 0;
  Adam opt(model, AdamOptions{.lr = o.lr, .eps = o.keras_adam ? 1e-7 : 1e-8, .weight_decay = o.weight_decay,
                              .epsilon_hat = o.keras_adam});
  const ExponentialDecay schedule(o.lr, o.decay_steps, o.decay_rate, o.staircase);
  CrossEntropyOptions loss_options;
  if (o.class_weights == ClassWeighting::balanced) {
    loss_options.class_weights = balanced_class_weights(train.y, o.num_classes);
    loss_options.weight_reduction = ClassWeightReduction::keras;
  }
  // The best epoch's weights, kept in memory.
  std::vector<Tensor<float, B>> best;
  auto snapshot = [&] {
    best.clear();
    model.visit_parameters([&](const std::string&, auto& p) { best.push_back(p.value.clone()); });
  };
  Generator order_gen(o.seed);
  FitResult result;
  for (int64_t epoch = 1; epoch <= o.epochs; ++epoch) {
    const auto start = std::chrono::steady_clock::now();
    model.train(true);
    const std::vector<int64_t> order = order_gen.permutation(train.size());
    double loss_sum = 0;
    int64_t seen = 0, correct = 0;
    for (int64_t s = 0; s < train.size(); s += o.batch) {
      const std::vector<int64_t> rows(order.begin() + s, order.begin() + std::min(train.size(), s + o.batch));
      const LabelledSet b = train.rows(rows);
      const Tensor<float, B> logits = model.forward(detail::on_backend<B>(b.x));
      const auto loss = softmax_cross_entropy(logits, b.y, loss_options);
      check_finite(loss.loss, "loss at epoch " + std::to_string(epoch) + ", batch " + std::to_string(s / o.batch + 1));
      opt.zero_grad();
      model.backward(loss.grad);
      check_gradients_finite(model, "epoch " + std::to_string(epoch) + ", batch " + std::to_string(s / o.batch + 1));
      if (o.clip_norm > 0) clip_grad_norm(model, o.clip_norm);
      opt.set_lr(schedule.lr(opt.step_count()));
      opt.step();
      loss_sum += loss.loss * static_cast<double>(rows.size());
      const auto predicted = argmax(logits);
      for (size_t i = 0; i < rows.size(); ++i) correct += predicted[i] == b.y[i];
      seen += static_cast<int64_t>(rows.size());
    }
    model.train(false);
    EpochRecord r{epoch, loss_sum / static_cast<double>(seen), static_cast<double>(correct) / static_cast<double>(seen),
                  NAN, NAN, opt.lr(), 0.0};
    if (select) {
      const auto [val_loss, val_p] = detail::evaluate_in_batches(model, validation, std::max<int64_t>(o.batch, 64), loss_options);
      r.val_loss = val_loss;
      r.val_accuracy = accuracy(validation.y, argmax(val_p));
    }
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    result.history.push_back(r);
    // Model selection on validation only: the best accuracy, ties going to the
    // lower loss (small validation sets tie often).
    if (!select ? epoch == o.epochs
                : r.val_accuracy > result.best_val_accuracy ||
                      (r.val_accuracy == result.best_val_accuracy && r.val_loss < result.best_val_loss)) {
      result.best_val_accuracy = r.val_accuracy;
      result.best_val_loss = r.val_loss;
      result.best_epoch = epoch;
      snapshot();
      if (!o.checkpoint.empty()) {
        auto meta = o.checkpoint_metadata;
        meta["epoch"] = std::to_string(epoch);
        meta["val_accuracy"] = std::to_string(r.val_accuracy);
        save_state_dict(model, o.checkpoint, meta);
      }
    }
    if (o.on_epoch) {
      char line[160];
      std::snprintf(line, sizeof line, "loss %.4f acc %.3f | val loss %.4f acc %.3f | lr %.2e", r.train_loss,
                    r.train_accuracy, r.val_loss, r.val_accuracy, r.lr);
      o.on_epoch(epoch, line);
    }
  }
  size_t i = 0;  // restore the best epoch's weights
  model.visit_parameters([&](const std::string&, auto& p) { p.value.copy_from(best[i++]); });
  model.train(false);
  return result;
}

}  // namespace stpain
