#pragma once
// Classification metrics with sklearn's definitions (zero_division = 0):
// confusion matrix, accuracy, per-class precision / recall / F1 with macro and
// weighted averages, binary ROC-AUC, a ClassificationReport that prints and
// serialises them, and mean / sample std over cross-validation folds.
//
// Classes are 0..num_classes-1 and every one of them is reported, as sklearn
// does when given labels=range(num_classes): a class never predicted has
// precision 0, a class never present has recall 0, and both count in the
// macro average.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <numeric>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "stpain/core/tensor.hpp"
#include "stpain/io/json.hpp"

namespace stpain {

// counts[t][p]: samples of true class t predicted as p (sklearn's layout).
using ConfusionMatrix = std::vector<std::vector<int64_t>>;

namespace detail {
inline void expect_same_length(size_t a, size_t b, const char* op, const char* what_a, const char* what_b) {
  STPAIN_CHECK(a == b, ShapeError, op, ": ", what_a, " has ", a, " entries but ", what_b, " has ", b);
}
inline void expect_labels_in_range(std::span<const int64_t> labels, int64_t num_classes, const char* op,
                                   const char* what) {
  for (size_t i = 0; i < labels.size(); ++i)
    STPAIN_CHECK(labels[i] >= 0 && labels[i] < num_classes, Error, op, ": ", what, " label ", labels[i], " at index ",
                 i, " is out of range for ", num_classes, " classes");
}
inline double divide_or_zero(double num, double den) { return den != 0.0 ? num / den : 0.0; }
}  // namespace detail

inline ConfusionMatrix confusion_matrix(std::span<const int64_t> y_true, std::span<const int64_t> y_pred,
                                        int64_t num_classes) {
  detail::expect_same_length(y_true.size(), y_pred.size(), "confusion_matrix", "y_true", "y_pred");
  STPAIN_CHECK(num_classes > 0, Error, "confusion_matrix: num_classes must be positive, got ", num_classes);
  detail::expect_labels_in_range(y_true, num_classes, "confusion_matrix", "y_true");
  detail::expect_labels_in_range(y_pred, num_classes, "confusion_matrix", "y_pred");
  ConfusionMatrix cm(static_cast<size_t>(num_classes), std::vector<int64_t>(static_cast<size_t>(num_classes), 0));
  for (size_t i = 0; i < y_true.size(); ++i) ++cm[static_cast<size_t>(y_true[i])][static_cast<size_t>(y_pred[i])];
  return cm;
}

// Fraction of exact matches (sklearn accuracy_score).
inline double accuracy(std::span<const int64_t> y_true, std::span<const int64_t> y_pred) {
  detail::expect_same_length(y_true.size(), y_pred.size(), "accuracy", "y_true", "y_pred");
  STPAIN_CHECK(!y_true.empty(), Error, "accuracy: no samples");
  int64_t hits = 0;
  for (size_t i = 0; i < y_true.size(); ++i) hits += y_true[i] == y_pred[i];
  return static_cast<double>(hits) / static_cast<double>(y_true.size());
}

// Per class c: precision = TP / (TP + FP), recall = TP / (TP + FN),
// f1 = 2 P R / (P + R), support = number of true samples of c; 0 where a
// denominator is 0 (sklearn's zero_division=0).
struct ClassScores {
  std::vector<double> precision, recall, f1;
  std::vector<int64_t> support;
};

struct AveragedScores {
  double precision = 0.0, recall = 0.0, f1 = 0.0;
};

inline ClassScores precision_recall_fscore_support(const ConfusionMatrix& cm) {
  const size_t n = cm.size();
  ClassScores s;
  s.precision.resize(n);
  s.recall.resize(n);
  s.f1.resize(n);
  s.support.resize(n);
  for (size_t c = 0; c < n; ++c) {
    STPAIN_CHECK(cm[c].size() == n, ShapeError, "precision_recall_fscore_support: confusion matrix row ", c, " has ",
                 cm[c].size(), " entries, expected ", n);
    int64_t predicted = 0, actual = 0;
    for (size_t k = 0; k < n; ++k) {
      predicted += cm[k][c];
      actual += cm[c][k];
    }
    const double tp = static_cast<double>(cm[c][c]);
    s.precision[c] = detail::divide_or_zero(tp, static_cast<double>(predicted));
    s.recall[c] = detail::divide_or_zero(tp, static_cast<double>(actual));
    s.f1[c] = detail::divide_or_zero(2.0 * s.precision[c] * s.recall[c], s.precision[c] + s.recall[c]);
    s.support[c] = actual;
  }
  return s;
}

inline ClassScores precision_recall_fscore_support(std::span<const int64_t> y_true, std::span<const int64_t> y_pred,
                                                   int64_t num_classes) {
  return precision_recall_fscore_support(confusion_matrix(y_true, y_pred, num_classes));
}

// Unweighted mean over classes (sklearn average="macro").
inline AveragedScores macro_average(const ClassScores& s) {
  AveragedScores a;
  const double n = static_cast<double>(s.precision.size());
  if (n == 0) return a;
  for (size_t c = 0; c < s.precision.size(); ++c) {
    a.precision += s.precision[c] / n;
    a.recall += s.recall[c] / n;
    a.f1 += s.f1[c] / n;
  }
  return a;
}

// Mean weighted by support (sklearn average="weighted"); 0 without samples.
inline AveragedScores weighted_average(const ClassScores& s) {
  AveragedScores a;
  const double total = static_cast<double>(std::accumulate(s.support.begin(), s.support.end(), int64_t{0}));
  if (total == 0) return a;
  for (size_t c = 0; c < s.precision.size(); ++c) {
    const double w = static_cast<double>(s.support[c]) / total;
    a.precision += w * s.precision[c];
    a.recall += w * s.recall[c];
    a.f1 += w * s.f1[c];
  }
  return a;
}

namespace detail {
template <class S>
double roc_auc(std::span<const int64_t> y_true, std::span<const S> scores) {
  expect_same_length(y_true.size(), scores.size(), "roc_auc_score", "y_true", "scores");
  int64_t positives = 0;
  for (size_t i = 0; i < y_true.size(); ++i) {
    STPAIN_CHECK(y_true[i] == 0 || y_true[i] == 1, Error, "roc_auc_score: y_true label ", y_true[i], " at index ", i,
                 " is not 0 or 1 (binary ROC-AUC)");
    STPAIN_CHECK(std::isfinite(static_cast<double>(scores[i])), NonFiniteError, "roc_auc_score: score at index ", i,
                 " is ", scores[i]);
    positives += y_true[i];
  }
  const int64_t negatives = static_cast<int64_t>(y_true.size()) - positives;
  STPAIN_CHECK(positives > 0 && negatives > 0, Error, "roc_auc_score: only one class (", positives > 0 ? 1 : 0,
               ") present in y_true (", y_true.size(), " samples); ROC AUC is not defined in that case");
  // Mann-Whitney U: the sum of the positives' ranks, tied scores sharing
  // their average rank (a tie counts as half a correct ordering).
  std::vector<size_t> order(y_true.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a] < scores[b]; });
  double positive_rank_sum = 0.0;
  for (size_t lo = 0; lo < order.size();) {
    size_t hi = lo;
    while (hi + 1 < order.size() && scores[order[hi + 1]] == scores[order[lo]]) ++hi;
    const double rank = 0.5 * static_cast<double>(lo + hi) + 1.0;  // 1-based average rank of [lo, hi]
    for (size_t k = lo; k <= hi; ++k) positive_rank_sum += y_true[order[k]] == 1 ? rank : 0.0;
    lo = hi + 1;
  }
  const double p = static_cast<double>(positives), n = static_cast<double>(negatives);
  return (positive_rank_sum - p * (p + 1.0) / 2.0) / (p * n);
}
}  // namespace detail

// Binary ROC-AUC (sklearn roc_auc_score) of scores for the positive class 1.
inline double roc_auc_score(std::span<const int64_t> y_true, std::span<const double> scores) {
  return detail::roc_auc(y_true, scores);
}
inline double roc_auc_score(std::span<const int64_t> y_true, std::span<const float> scores) {
  return detail::roc_auc(y_true, scores);
}

// The predicted class of each row of [N, C] scores (the first of equal maxima).
template <class T, class B>
std::vector<int64_t> argmax(const Tensor<T, B>& scores) {
  STPAIN_CHECK(scores.rank() == 2 && scores.size(1) > 0, ShapeError, "argmax: scores must be [N, C] with C > 0, got ",
               scores.shape().str());
  const int64_t n = scores.size(0), c = scores.size(1);
  std::vector<int64_t> out(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    out[static_cast<size_t>(i)] =
        std::max_element(scores.data() + i * c, scores.data() + (i + 1) * c) - (scores.data() + i * c);
  return out;
}

// Mean and sample standard deviation (ddof = 1, as numpy std(ddof=1) and
// pandas); the std of a single value is NaN.
struct MeanStd {
  double mean = 0.0, std = 0.0;
};

inline MeanStd mean_and_std(std::span<const double> values) {
  STPAIN_CHECK(!values.empty(), Error, "mean_and_std: no values");
  const double n = static_cast<double>(values.size());
  MeanStd r;
  for (double v : values) r.mean += v / n;
  if (values.size() < 2) {
    r.std = std::nan("");
    return r;
  }
  double ss = 0.0;
  for (double v : values) ss += (v - r.mean) * (v - r.mean);
  r.std = std::sqrt(ss / (n - 1.0));
  return r;
}

// Everything above for one evaluation, printable like sklearn's
// classification_report and serialisable like its output_dict.
struct ClassificationReport {
  std::vector<std::string> class_names;
  ConfusionMatrix confusion;
  double accuracy = 0.0;
  ClassScores per_class;
  AveragedScores macro_avg, weighted_avg;
  std::optional<double> roc_auc;  // binary tasks, when the caller sets it from scores

  int64_t num_samples() const {
    return std::accumulate(per_class.support.begin(), per_class.support.end(), int64_t{0});
  }

  std::string str() const {
    size_t width = 12;
    for (const auto& n : class_names) width = std::max(width, n.size());
    std::string out;
    auto line = [&](const std::string& name, const char* fmt, auto... values) {
      char buf[160];
      std::snprintf(buf, sizeof buf, fmt, values...);
      out += std::string(width - std::min(width, name.size()), ' ') + name + buf + "\n";
    };
    line("", " %10s %10s %10s %10s\n", "precision", "recall", "f1-score", "support");
    for (size_t c = 0; c < class_names.size(); ++c)
      line(class_names[c], " %10.4f %10.4f %10.4f %10lld", per_class.precision[c], per_class.recall[c], per_class.f1[c],
           static_cast<long long>(per_class.support[c]));
    out += "\n";
    const long long n = static_cast<long long>(num_samples());
    line("accuracy", " %10s %10s %10.4f %10lld", "", "", accuracy, n);
    line("macro avg", " %10.4f %10.4f %10.4f %10lld", macro_avg.precision, macro_avg.recall, macro_avg.f1, n);
    line("weighted avg", " %10.4f %10.4f %10.4f %10lld", weighted_avg.precision, weighted_avg.recall, weighted_avg.f1,
         n);
    if (roc_auc) line("roc auc", " %10s %10s %10.4f", "", "", *roc_auc);
    out += "\nconfusion matrix (rows = true, columns = predicted):\n" + std::string(width, ' ');
    for (size_t c = 0; c < confusion.size(); ++c) {
      char buf[24];
      std::snprintf(buf, sizeof buf, " %7zu", c);
      out += buf;
    }
    out += "\n";
    for (size_t t = 0; t < confusion.size(); ++t) {
      std::string row;
      for (int64_t v : confusion[t]) {
        char buf[24];
        std::snprintf(buf, sizeof buf, " %7lld", static_cast<long long>(v));
        row += buf;
      }
      out += std::string(width - std::min(width, class_names[t].size()), ' ') + class_names[t] + row + "\n";
    }
    return out;
  }

  // sklearn's output_dict keys, plus "confusion_matrix" and "roc_auc".
  json::Value to_json() const {
    auto scores = [](double p, double r, double f, int64_t support) {
      return json::Value(json::Object{{"precision", p}, {"recall", r}, {"f1-score", f}, {"support", support}});
    };
    json::Object o;
    for (size_t c = 0; c < class_names.size(); ++c)
      o[class_names[c]] = scores(per_class.precision[c], per_class.recall[c], per_class.f1[c], per_class.support[c]);
    o["accuracy"] = accuracy;
    o["macro avg"] = scores(macro_avg.precision, macro_avg.recall, macro_avg.f1, num_samples());
    o["weighted avg"] = scores(weighted_avg.precision, weighted_avg.recall, weighted_avg.f1, num_samples());
    json::Array rows;
    for (const auto& r : confusion) rows.push_back(json::Array(r.begin(), r.end()));
    o["confusion_matrix"] = std::move(rows);
    if (roc_auc) o["roc_auc"] = *roc_auc;
    return o;
  }
};

// class_names defaults to "0", "1", ...; it must name every class.
inline ClassificationReport classification_report(std::span<const int64_t> y_true, std::span<const int64_t> y_pred,
                                                  int64_t num_classes, std::vector<std::string> class_names = {}) {
  ClassificationReport r;
  r.confusion = confusion_matrix(y_true, y_pred, num_classes);
  if (class_names.empty())
    for (int64_t c = 0; c < num_classes; ++c) class_names.push_back(std::to_string(c));
  STPAIN_CHECK(static_cast<int64_t>(class_names.size()) == num_classes, ShapeError,
               "classification_report: ", class_names.size(), " class names for ", num_classes, " classes");
  r.class_names = std::move(class_names);
  r.accuracy = accuracy(y_true, y_pred);
  r.per_class = precision_recall_fscore_support(r.confusion);
  r.macro_avg = macro_average(r.per_class);
  r.weighted_avg = weighted_average(r.per_class);
  return r;
}

}  // namespace stpain
