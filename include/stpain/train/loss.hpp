#pragma once
// Softmax cross-entropy over logits [N, C] and integer labels, returning the
// loss and its gradient w.r.t. the logits in one pass (the training loop feeds
// the gradient to model.backward()).
//
//   auto [loss, dlogits] = softmax_cross_entropy(logits, labels);
//   auto [loss, dlogits] = softmax_cross_entropy(logits, labels,
//       {.class_weights = balanced_class_weights(train_labels, C), .label_smoothing = 0.1});
//
// Class weights follow either framework:
//   ClassWeightReduction::pytorch  (torch.nn.CrossEntropyLoss(weight=w)):
//       sum_i w[y_i] * loss_i / sum_i w[y_i]; with label smoothing the
//       smoothing term weights each class c by w[c], as PyTorch does.
//   ClassWeightReduction::keras    (model.fit(class_weight=w)):
//       mean_i w[y_i] * loss_i, where loss_i already includes label smoothing.
// Without class weights both are the plain mean.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <vector>

#include "stpain/core/tensor.hpp"

namespace stpain {

enum class ClassWeightReduction {
  pytorch,  // sum(w_y * loss) / sum(w_y)
  keras,    // mean(w_y * loss)
};

struct CrossEntropyOptions {
  std::vector<double> class_weights;  // empty: every class weighs 1
  ClassWeightReduction weight_reduction = ClassWeightReduction::pytorch;
  double label_smoothing = 0.0;  // in [0, 1]; the target is (1 - s) * one_hot + s / C
};

template <class T = float, class B = cpu>
struct CrossEntropyResult {
  double loss = 0.0;
  Tensor<T, B> grad;  // d loss / d logits, shape [N, C]
};

namespace backend {

// Per row: log-softmax by log-sum-exp (shifted by the row maximum, so no
// exp() overflows), then loss += sum_c q_c * -log p_c and
// grad_c = (sum_c q_c) * p_c - q_c, where q is the row's weighted target:
//   q_ic = onehot_scale[i] * [c == y_i] + smooth_scale[i] * class_scale[c]
// (class_scale may be null: all ones).
template <class T>
double softmax_cross_entropy_rows(cpu, const T* logits, const int64_t* labels, int64_t rows, int64_t classes,
                                  const double* onehot_scale, const double* smooth_scale, const double* class_scale,
                                  T* grad) {
  double total = 0.0;
  std::vector<double> log_p(static_cast<size_t>(classes)), q(static_cast<size_t>(classes));
  for (int64_t i = 0; i < rows; ++i) {
    const T* z = logits + i * classes;
    T* g = grad + i * classes;
    double zmax = z[0];
    for (int64_t c = 1; c < classes; ++c) zmax = std::max(zmax, static_cast<double>(z[c]));
    double sum_exp = 0.0;
    for (int64_t c = 0; c < classes; ++c) sum_exp += std::exp(static_cast<double>(z[c]) - zmax);
    const double log_sum = std::log(sum_exp) + zmax;
    double q_total = 0.0;
    for (int64_t c = 0; c < classes; ++c) {
      const size_t k = static_cast<size_t>(c);
      log_p[k] = static_cast<double>(z[c]) - log_sum;
      q[k] = smooth_scale[i] * (class_scale ? class_scale[c] : 1.0) + (c == labels[i] ? onehot_scale[i] : 0.0);
      total -= q[k] * log_p[k];
      q_total += q[k];
    }
    for (int64_t c = 0; c < classes; ++c)
      g[c] = static_cast<T>(q_total * std::exp(log_p[static_cast<size_t>(c)]) - q[static_cast<size_t>(c)]);
  }
  return total;
}

// Row-wise softmax / log-softmax of a [rows, classes] matrix.
template <class T>
void softmax_rows(cpu, const T* x, T* y, int64_t rows, int64_t classes, bool log) {
  parallel_for(rows, 256, [&](int64_t r0, int64_t r1) {
    for (int64_t i = r0; i < r1; ++i) {
      const T* z = x + i * classes;
      T* out = y + i * classes;
      double zmax = z[0];
      for (int64_t c = 1; c < classes; ++c) zmax = std::max(zmax, static_cast<double>(z[c]));
      double sum_exp = 0.0;
      for (int64_t c = 0; c < classes; ++c) sum_exp += std::exp(static_cast<double>(z[c]) - zmax);
      const double log_sum = std::log(sum_exp) + zmax;
      for (int64_t c = 0; c < classes; ++c) {
        const double lp = static_cast<double>(z[c]) - log_sum;
        out[c] = static_cast<T>(log ? lp : std::exp(lp));
      }
    }
  });
}

}  // namespace backend

namespace detail {
template <class T, class B>
void expect_logits_matrix(const Tensor<T, B>& logits, const char* op) {
  STPAIN_CHECK(logits.rank() == 2 && logits.size(1) > 0, ShapeError, op, ": logits must be [N, C] with C > 0, got ",
               logits.shape().str());
}
}  // namespace detail

// Softmax probabilities over the last dimension of [N, C] logits.
template <class T, class B>
Tensor<T, B> softmax(const Tensor<T, B>& logits) {
  detail::expect_logits_matrix(logits, "softmax");
  Tensor<T, B> p = Tensor<T, B>::empty(logits.shape());
  softmax_rows(B{}, logits.data(), p.data(), logits.size(0), logits.size(1), false);
  return p;
}

template <class T, class B>
Tensor<T, B> log_softmax(const Tensor<T, B>& logits) {
  detail::expect_logits_matrix(logits, "log_softmax");
  Tensor<T, B> p = Tensor<T, B>::empty(logits.shape());
  softmax_rows(B{}, logits.data(), p.data(), logits.size(0), logits.size(1), true);
  return p;
}

// Mean softmax cross-entropy of logits [N, C] against labels in [0, C), and
// its gradient w.r.t. the logits.
template <class T, class B>
CrossEntropyResult<T, B> softmax_cross_entropy(const Tensor<T, B>& logits, std::span<const int64_t> labels,
                                               const CrossEntropyOptions& o = {}) {
  detail::expect_logits_matrix(logits, "softmax_cross_entropy");
  const int64_t n = logits.size(0), classes = logits.size(1);
  STPAIN_CHECK(static_cast<int64_t>(labels.size()) == n, ShapeError, "softmax_cross_entropy: logits ",
               logits.shape().str(), " need ", n, " labels, got ", labels.size());
  STPAIN_CHECK(n > 0, ShapeError, "softmax_cross_entropy: empty batch (logits ", logits.shape().str(), ")");
  const bool weighted = !o.class_weights.empty();
  STPAIN_CHECK(!weighted || static_cast<int64_t>(o.class_weights.size()) == classes, ShapeError,
               "softmax_cross_entropy: ", o.class_weights.size(), " class weights for logits ", logits.shape().str(),
               " (", classes, " classes)");
  STPAIN_CHECK(o.label_smoothing >= 0.0 && o.label_smoothing <= 1.0, Error,
               "softmax_cross_entropy: label_smoothing must be in [0, 1], got ", o.label_smoothing);
  for (int64_t i = 0; i < n; ++i)
    STPAIN_CHECK(labels[i] >= 0 && labels[i] < classes, Error, "softmax_cross_entropy: label ", labels[i], " at index ",
                 i, " is out of range for ", classes, " classes (logits ", logits.shape().str(), ")");

  auto weight = [&](int64_t c) { return weighted ? o.class_weights[static_cast<size_t>(c)] : 1.0; };
  const double s = o.label_smoothing;
  const bool pytorch = o.weight_reduction == ClassWeightReduction::pytorch;
  // The normaliser of the batch mean: sum of the labels' weights (PyTorch) or N.
  double norm = static_cast<double>(n);
  if (weighted && pytorch) {
    norm = 0.0;
    for (int64_t y : labels) norm += weight(y);
    STPAIN_CHECK(norm > 0.0, Error, "softmax_cross_entropy: the class weights of the batch's labels sum to ", norm,
                 ", cannot normalise the loss");
  }
  // Per row: the one-hot part (1 - s) w_y / norm and the smoothing part s / C / norm,
  // which PyTorch spreads as w_c per class and Keras weighs by w_y per row.
  const size_t rows = static_cast<size_t>(n);
  std::vector<double> onehot_scale(rows), smooth_scale(rows);
  std::vector<double> class_scale;
  for (size_t i = 0; i < rows; ++i) {
    const double w = weight(labels[i]);
    onehot_scale[i] = (1.0 - s) * w / norm;
    smooth_scale[i] = s / static_cast<double>(classes) / norm * (weighted && !pytorch ? w : 1.0);
  }
  if (weighted && pytorch && s > 0) class_scale = o.class_weights;

  CrossEntropyResult<T, B> r;
  r.grad = Tensor<T, B>::empty(logits.shape());
  r.loss = softmax_cross_entropy_rows(B{}, logits.data(), labels.data(), n, classes, onehot_scale.data(),
                                      smooth_scale.data(), class_scale.empty() ? nullptr : class_scale.data(),
                                      r.grad.data());
  return r;
}

// torch.nn.CrossEntropyLoss-style holder of the options.
struct CrossEntropyLoss {
  CrossEntropyOptions options;
  template <class T, class B>
  CrossEntropyResult<T, B> operator()(const Tensor<T, B>& logits, std::span<const int64_t> labels) const {
    return softmax_cross_entropy(logits, labels, options);
  }
};

// sklearn's compute_class_weight("balanced"): n_samples / (n_classes * count_c).
// A class absent from the labels gets weight 0 (it can never be a target).
inline std::vector<double> balanced_class_weights(std::span<const int64_t> labels, int64_t num_classes) {
  STPAIN_CHECK(num_classes > 0, Error, "balanced_class_weights: num_classes must be positive, got ", num_classes);
  std::vector<int64_t> count(static_cast<size_t>(num_classes), 0);
  for (size_t i = 0; i < labels.size(); ++i) {
    STPAIN_CHECK(labels[i] >= 0 && labels[i] < num_classes, Error, "balanced_class_weights: label ", labels[i],
                 " at index ", i, " is out of range for ", num_classes, " classes");
    ++count[static_cast<size_t>(labels[i])];
  }
  std::vector<double> w(static_cast<size_t>(num_classes), 0.0);
  for (int64_t c = 0; c < num_classes; ++c)
    if (count[static_cast<size_t>(c)] > 0)
      w[static_cast<size_t>(c)] =
          static_cast<double>(labels.size()) /
          (static_cast<double>(num_classes) * static_cast<double>(count[static_cast<size_t>(c)]));
  return w;
}

}  // namespace stpain
