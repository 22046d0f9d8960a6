#pragma once
// Results tables for the trainers: per model per fold a ClassificationReport
// (accuracy, weighted precision / recall / F1, confusion matrix, ROC-AUC),
// aggregated to mean ± sample std over folds, and rendered as
//   * the paper's Table 2 (Model | Accuracy | Precision | Recall | F1, in %),
//   * a side-by-side comparison with the paper's numbers (paper_results.hpp),
//   * Markdown for the written report,
//   * JSON (everything, confusion matrices included; read back by
//     read_results_json) and CSV (one row per model per fold + mean and std
//     rows), both written atomically.
// Tables print percentages; JSON and CSV keep fractions in [0, 1] as sklearn
// does. Results marked `synthetic` say so in every rendering, so numbers from
// generated clips are never mistaken for PEMF results.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <optional>
#include <set>
#include <span>
#include <sstream>
#include <string>
#include <vector>

#include "stpain/core/error.hpp"
#include "stpain/io/atomic_file.hpp"
#include "stpain/io/json.hpp"
#include "stpain/train/metrics.hpp"
#include "stpain/train/paper_results.hpp"

namespace stpain {

// One model evaluated on one fold's test part.
struct FoldResult {
  int64_t fold = 0;
  ClassificationReport report;
  json::Object extra;  // trainer-specific numbers (epochs, best epoch, seconds); kept in the JSON only
};

// A fold's report from predictions; ROC-AUC is set for binary tasks when
// positive-class scores are given and the fold holds both classes.
inline FoldResult evaluate_fold(int64_t fold, std::span<const int64_t> y_true, std::span<const int64_t> y_pred,
                                std::span<const double> positive_scores = {},
                                std::vector<std::string> class_names = {"no pain", "pain"}) {
  FoldResult r;
  r.fold = fold;
  const auto classes = static_cast<int64_t>(class_names.size());
  r.report = classification_report(y_true, y_pred, classes, std::move(class_names));
  if (classes == 2 && !positive_scores.empty()) {
    const bool both = std::find(y_true.begin(), y_true.end(), 0) != y_true.end() &&
                      std::find(y_true.begin(), y_true.end(), 1) != y_true.end();
    if (both) r.report.roc_auc = roc_auc_score(y_true, positive_scores);
    else detail::expect_same_length(y_true.size(), positive_scores.size(), "evaluate_fold", "y_true", "scores");
  }
  return r;
}

inline FoldResult evaluate_fold(int64_t fold, std::span<const int64_t> y_true, std::span<const int64_t> y_pred,
                                std::span<const float> positive_scores,
                                std::vector<std::string> class_names = {"no pain", "pain"}) {
  const std::vector<double> scores(positive_scores.begin(), positive_scores.end());
  return evaluate_fold(fold, y_true, y_pred, scores, std::move(class_names));
}

// A report rebuilt from its confusion matrix (how JSON results are read back).
inline ClassificationReport report_from_confusion(ConfusionMatrix cm, std::vector<std::string> class_names,
                                                  std::optional<double> roc_auc = std::nullopt) {
  STPAIN_CHECK(!cm.empty() && cm.size() == class_names.size(), ShapeError, "report_from_confusion: ", cm.size(),
               " confusion rows for ", class_names.size(), " class names");
  ClassificationReport r;
  r.per_class = precision_recall_fscore_support(cm);  // checks squareness
  int64_t hits = 0, total = 0;
  for (size_t t = 0; t < cm.size(); ++t)
    for (size_t p = 0; p < cm.size(); ++p) {
      STPAIN_CHECK(cm[t][p] >= 0, Error, "report_from_confusion: negative count ", cm[t][p], " at [", t, "][", p, "]");
      total += cm[t][p];
      hits += t == p ? cm[t][p] : 0;
    }
  STPAIN_CHECK(total > 0, Error, "report_from_confusion: the confusion matrix counts no samples");
  r.accuracy = static_cast<double>(hits) / static_cast<double>(total);
  r.macro_avg = macro_average(r.per_class);
  r.weighted_avg = weighted_average(r.per_class);
  r.confusion = std::move(cm);
  r.class_names = std::move(class_names);
  r.roc_auc = roc_auc;
  return r;
}

struct ModelResults {
  std::string model;      // row name, e.g. "ConvNeXtXL + LSTM"
  std::string reference;  // the paper's name for it when it differs from `model`; empty otherwise
  std::vector<FoldResult> folds;

  const std::string& reference_name() const { return reference.empty() ? model : reference; }
};

// Mean and sample std (ddof 1; NaN for one fold) over a model's folds, as
// fractions. ROC-AUC only when every fold has one.
struct ResultsSummary {
  MeanStd accuracy, precision, recall, f1;
  std::optional<MeanStd> roc_auc;
  int64_t folds = 0;
};

inline ResultsSummary summarize(const ModelResults& m) {
  STPAIN_CHECK(!m.folds.empty(), Error, "summarize: model \"", m.model, "\" has no folds");
  std::vector<double> acc, p, r, f, auc;
  for (const FoldResult& fr : m.folds) {
    acc.push_back(fr.report.accuracy);
    p.push_back(fr.report.weighted_avg.precision);
    r.push_back(fr.report.weighted_avg.recall);
    f.push_back(fr.report.weighted_avg.f1);
    if (fr.report.roc_auc) auc.push_back(*fr.report.roc_auc);
  }
  ResultsSummary s{mean_and_std(acc), mean_and_std(p), mean_and_std(r), mean_and_std(f), std::nullopt,
                   static_cast<int64_t>(m.folds.size())};
  if (auc.size() == m.folds.size()) s.roc_auc = mean_and_std(auc);
  return s;
}

// Every model of one experiment (one protocol, one dataset).
struct Results {
  std::string title;       // e.g. "Table 2: ConvNeXtXL features + LSTM heads"
  std::string protocol;    // e.g. "subject-independent 5-fold"
  std::string dataset;     // e.g. "PEMF" or what the synthetic clips are
  bool synthetic = false;  // generated data: every table, CSV row and JSON says so
  json::Object metadata;   // provenance (seed, epochs, features file), JSON only
  std::vector<ModelResults> models;

  // The model's entry, appended (in first-use order, the tables' row order) when new.
  ModelResults& model(const std::string& name) {
    for (ModelResults& m : models)
      if (m.model == name) return m;
    models.push_back({name, {}, {}});
    return models.back();
  }
  const ModelResults* find(const std::string& name) const {
    for (const ModelResults& m : models)
      if (m.model == name) return &m;
    return nullptr;
  }
  void add(const std::string& model_name, FoldResult fold) { model(model_name).folds.push_back(std::move(fold)); }
};

// Throws Error naming the model and fold when results cannot be tabulated:
// no models, an unnamed or repeated model, a model without folds, a repeated
// fold number, or a report whose confusion matrix does not fit its classes.
inline void validate_results(const Results& results) {
  STPAIN_CHECK(!results.models.empty(), Error, "results \"", results.title, "\": no models");
  std::set<std::string> names;
  for (const ModelResults& m : results.models) {
    STPAIN_CHECK(!m.model.empty(), Error, "results \"", results.title, "\": a model has no name");
    STPAIN_CHECK(names.insert(m.model).second, Error, "results \"", results.title, "\": model \"", m.model,
                 "\" appears twice");
    STPAIN_CHECK(!m.folds.empty(), Error, "results \"", results.title, "\": model \"", m.model, "\" has no folds");
    std::set<int64_t> seen;
    for (const FoldResult& f : m.folds) {
      STPAIN_CHECK(seen.insert(f.fold).second, Error, "results: model \"", m.model, "\" has fold ", f.fold, " twice");
      const ClassificationReport& r = f.report;
      const size_t c = r.class_names.size();
      bool square = c > 0 && r.confusion.size() == c && r.per_class.support.size() == c;
      for (const auto& row : r.confusion) square = square && row.size() == c;
      STPAIN_CHECK(square, ShapeError, "results: model \"", m.model, "\" fold ", f.fold, ": ", c,
                   " class names but a ", r.confusion.size(), "-row confusion matrix and ", r.per_class.support.size(),
                   " per-class scores");
      STPAIN_CHECK(r.num_samples() > 0, Error, "results: model \"", m.model, "\" fold ", f.fold, " has no samples");
    }
  }
}

namespace detail {

inline std::string format_double(const char* fmt, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, fmt, v);
  return buf;
}

// "90.45 ± 1.23" in %; the std is left out when undefined (one fold).
inline std::string percent(const MeanStd& m) {
  std::string s = format_double("%.2f", 100.0 * m.mean);
  if (std::isfinite(m.std)) s += " ± " + format_double("%.2f", 100.0 * m.std);
  return s;
}

// Columns on screen: UTF-8 continuation bytes take none.
inline size_t display_width(const std::string& s) {
  size_t w = 0;
  for (unsigned char ch : s) w += (ch & 0xC0) != 0x80;
  return w;
}

inline std::string pad(const std::string& s, size_t width, bool right_align) {
  const std::string fill(width - std::min(width, display_width(s)), ' ');
  return right_align ? fill + s : s + fill;
}

// A plain-text table with " | " between columns; the first `text_columns`
// columns are left aligned, the (numeric) others right aligned.
inline std::string text_table(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows,
                              size_t text_columns = 1) {
  std::vector<size_t> width(header.size());
  for (size_t c = 0; c < header.size(); ++c) width[c] = display_width(header[c]);
  for (const auto& row : rows)
    for (size_t c = 0; c < row.size(); ++c) width[c] = std::max(width[c], display_width(row[c]));
  auto line = [&](const std::vector<std::string>& cells) {
    std::string out;
    for (size_t c = 0; c < cells.size(); ++c) out += (c ? " | " : "") + pad(cells[c], width[c], c >= text_columns);
    while (!out.empty() && out.back() == ' ') out.pop_back();
    return out + "\n";
  };
  std::string out = line(header);
  for (size_t c = 0; c < width.size(); ++c) out += (c ? "-+-" : "") + std::string(width[c], '-');
  out += "\n";
  for (const auto& row : rows) out += line(row);
  return out;
}

inline std::string markdown_cell(const std::string& s) {
  std::string out;
  for (char ch : s) out += ch == '|' ? std::string("\\|") : std::string(1, ch);
  return out;
}

// Left-aligned text columns first, right-aligned numbers after.
inline std::string markdown_table(const std::vector<std::string>& header,
                                  const std::vector<std::vector<std::string>>& rows, size_t text_columns = 1) {
  auto line = [](const std::vector<std::string>& cells) {
    std::string out = "|";
    for (const auto& c : cells) out += " " + markdown_cell(c) + " |";
    return out + "\n";
  };
  std::string out = line(header) + "|";
  for (size_t c = 0; c < header.size(); ++c) out += c < text_columns ? "---|" : "---:|";
  out += "\n";
  for (const auto& row : rows) out += line(row);
  return out;
}

inline const char* synthetic_notice() {
  return "SYNTHETIC DATA: these numbers come from generated clips, not PEMF; they test the pipeline and are not "
         "comparable with the paper's results.";
}

inline std::string heading(const Results& r) {
  std::string h = r.title.empty() ? "Results" : r.title;
  if (!r.protocol.empty()) h += " | protocol: " + r.protocol;
  if (!r.dataset.empty()) h += " | data: " + r.dataset;
  if (r.synthetic) h += " [SYNTHETIC DATA]";
  return h;
}

// "mean ± sample std over 5 folds" (or each model's own count when they differ).
inline std::string folds_note(const Results& r) {
  std::set<size_t> counts;
  for (const auto& m : r.models) counts.insert(m.folds.size());
  const std::string over = counts.size() == 1 ? "over " + std::to_string(*counts.begin()) + " fold" +
                                                    (*counts.begin() == 1 ? "" : "s")
                                              : "over each model's folds";
  return "mean ± sample std (ddof 1) " + over + "; precision, recall and F1 are support-weighted averages";
}

struct SummaryTable {
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
};

inline SummaryTable summary_table(const Results& results, bool with_roc_auc) {
  SummaryTable t{{"Model", "Accuracy (%)", "Precision (%)", "Recall (%)", "F1 (%)"}, {}};
  if (with_roc_auc) t.header.push_back("ROC-AUC (%)");
  for (const ModelResults& m : results.models) {
    const ResultsSummary s = summarize(m);
    std::vector<std::string> row = {m.model, percent(s.accuracy), percent(s.precision), percent(s.recall),
                                    percent(s.f1)};
    if (with_roc_auc) row.push_back(s.roc_auc ? percent(*s.roc_auc) : "n/a");
    t.rows.push_back(std::move(row));
  }
  return t;
}

struct ComparisonRow {
  std::string model, metric, ours, paper, delta;
};

inline std::vector<ComparisonRow> comparison_rows(const Results& results, std::span<const PaperResult> reference) {
  std::vector<ComparisonRow> rows;
  for (const ModelResults& m : results.models) {
    const ResultsSummary s = summarize(m);
    const PaperResult* p = find_paper_result(m.reference_name(), reference);
    const std::pair<const char*, std::pair<MeanStd, std::optional<double>>> metrics[] = {
        {"Accuracy", {s.accuracy, p ? std::optional<double>(p->accuracy) : std::nullopt}},
        {"Precision", {s.precision, p ? p->precision : std::nullopt}},
        {"Recall", {s.recall, p ? p->recall : std::nullopt}},
        {"F1", {s.f1, p ? p->f1 : std::nullopt}},
    };
    bool first = true;
    for (const auto& [name, values] : metrics) {
      const auto& [ours, paper] = values;
      rows.push_back({first ? m.model : "", name, percent(ours), paper ? format_double("%.2f", *paper) : "n/a",
                      paper ? format_double("%+.2f", 100.0 * ours.mean - *paper) : "n/a"});
      first = false;
    }
  }
  return rows;
}

inline std::string comparison_heading(const Results& results) {
  return "Ours (" + (results.dataset.empty() ? std::string("this run") : results.dataset) +
         (results.protocol.empty() ? "" : ", " + results.protocol) + ") vs the paper (" + std::string(kPaperDataset) +
         "); delta = ours - paper in percentage points";
}

inline json::Value mean_std_json(const MeanStd& m) { return json::Object{{"mean", m.mean}, {"std", m.std}}; }

inline std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string out = "\"";
  for (char ch : s) out += ch == '"' ? std::string("\"\"") : std::string(1, ch);
  return out + "\"";
}

// Full precision for numbers read back; empty for undefined ones.
inline std::string csv_number(double v) { return std::isfinite(v) ? format_double("%.17g", v) : ""; }

}  // namespace detail

struct TableOptions {
  bool roc_auc = false;  // add a ROC-AUC column (the paper's tables have none)
};

// The paper's Table 2 layout as plain text, with a heading and a footnote.
inline std::string format_table(const Results& results, const TableOptions& options = {}) {
  validate_results(results);
  const detail::SummaryTable t = detail::summary_table(results, options.roc_auc);
  std::string out = detail::heading(results) + "\n";
  if (results.synthetic) out += std::string(detail::synthetic_notice()) + "\n";
  out += detail::text_table(t.header, t.rows);
  out += "(" + detail::folds_note(results) + ")\n";
  return out;
}

inline void print_table(const Results& results, const TableOptions& options = {}, std::FILE* out = stdout) {
  const std::string text = format_table(results, options);
  std::fwrite(text.data(), 1, text.size(), out);
  std::fflush(out);
}

// Our mean ± std beside the paper's value, per model and metric; models the
// paper does not have (matched on ModelResults::reference_name()) show n/a.
inline std::string format_comparison(const Results& results,
                                     std::span<const PaperResult> reference = kPaperResults) {
  validate_results(results);
  std::vector<std::vector<std::string>> rows;
  for (auto& r : detail::comparison_rows(results, reference)) rows.push_back({r.model, r.metric, r.ours, r.paper, r.delta});
  std::string out = detail::comparison_heading(results) + "\n";
  if (results.synthetic) out += std::string(detail::synthetic_notice()) + "\n";
  return out + detail::text_table({"Model", "Metric", "Ours (%)", "Paper (%)", "Delta (pp)"}, rows, 2);
}

struct MarkdownOptions {
  bool roc_auc = false;                                // ROC-AUC column in the summary table
  bool per_fold = true;                                // a table of every fold
  bool comparison = true;                              // the side-by-side with the paper
  std::span<const PaperResult> reference = kPaperResults;
  int heading_level = 3;
};

// The tables for the written report, in Markdown.
inline std::string to_markdown(const Results& results, const MarkdownOptions& options = {}) {
  validate_results(results);
  const std::string hashes(static_cast<size_t>(std::clamp(options.heading_level, 1, 6)), '#');
  std::string out = hashes + " " + detail::heading(results) + "\n\n";
  if (results.synthetic) out += "> **" + std::string(detail::synthetic_notice()) + "**\n\n";
  const detail::SummaryTable t = detail::summary_table(results, options.roc_auc);
  out += detail::markdown_table(t.header, t.rows);
  out += "\n*" + detail::folds_note(results) + ".*\n";
  if (options.per_fold) {
    std::vector<std::vector<std::string>> rows;
    for (const ModelResults& m : results.models)
      for (const FoldResult& f : m.folds) {
        const ClassificationReport& r = f.report;
        rows.push_back({m.model, std::to_string(f.fold), std::to_string(r.num_samples()),
                        detail::format_double("%.2f", 100 * r.accuracy),
                        detail::format_double("%.2f", 100 * r.weighted_avg.precision),
                        detail::format_double("%.2f", 100 * r.weighted_avg.recall),
                        detail::format_double("%.2f", 100 * r.weighted_avg.f1),
                        r.roc_auc ? detail::format_double("%.2f", 100 * *r.roc_auc) : "n/a"});
      }
    out += "\n" + hashes + "# Per fold\n\n";
    out += detail::markdown_table(
        {"Model", "Fold", "Test clips", "Accuracy (%)", "Precision (%)", "Recall (%)", "F1 (%)", "ROC-AUC (%)"}, rows);
  }
  if (options.comparison) {
    std::vector<std::vector<std::string>> rows;
    for (auto& r : detail::comparison_rows(results, options.reference))
      rows.push_back({r.model, r.metric, r.ours, r.paper, r.delta});
    out += "\n" + hashes + "# Compared with the paper\n\n" + detail::comparison_heading(results) + ".\n\n";
    if (results.synthetic) out += "> **" + std::string(detail::synthetic_notice()) + "**\n\n";
    out += detail::markdown_table({"Model", "Metric", "Ours (%)", "Paper (%)", "Delta (pp)"}, rows, 2);
  }
  return out;
}

// Everything, as fractions: per fold the class names, the report (sklearn's
// output_dict keys + confusion_matrix + roc_auc) and the trainer's extras;
// per model the summary. NaN (the std of one fold) is written as null.
inline json::Value to_json(const Results& results) {
  validate_results(results);
  json::Array models;
  for (const ModelResults& m : results.models) {
    json::Array folds;
    for (const FoldResult& f : m.folds) {
      json::Array names(f.report.class_names.begin(), f.report.class_names.end());
      folds.push_back(json::Object{{"fold", f.fold},
                                   {"class_names", std::move(names)},
                                   {"report", f.report.to_json()},
                                   {"extra", f.extra}});
    }
    const ResultsSummary s = summarize(m);
    json::Object summary{{"accuracy", detail::mean_std_json(s.accuracy)},
                         {"precision", detail::mean_std_json(s.precision)},
                         {"recall", detail::mean_std_json(s.recall)},
                         {"f1", detail::mean_std_json(s.f1)},
                         {"folds", s.folds}};
    if (s.roc_auc) summary["roc_auc"] = detail::mean_std_json(*s.roc_auc);
    models.push_back(json::Object{{"model", m.model},
                                  {"reference", m.reference},
                                  {"summary", std::move(summary)},
                                  {"folds", std::move(folds)}});
  }
  return json::Object{{"title", results.title},
                      {"protocol", results.protocol},
                      {"dataset", results.dataset},
                      {"synthetic", results.synthetic},
                      {"units", "fractions in [0, 1]; precision, recall and f1 in summary are weighted averages"},
                      {"metadata", results.metadata},
                      {"models", std::move(models)}};
}

// Reads what to_json wrote; reports are rebuilt from their confusion matrices
// (the summaries are recomputed, not trusted).
inline Results results_from_json(const json::Value& v) {
  Results r;
  r.title = v.at("title").as_string();
  r.protocol = v.at("protocol").as_string();
  r.dataset = v.at("dataset").as_string();
  r.synthetic = v.at("synthetic").as_bool();
  r.metadata = v.at("metadata").as_object();
  for (const json::Value& jm : v.at("models").as_array()) {
    ModelResults m{jm.at("model").as_string(), jm.at("reference").as_string(), {}};
    for (const json::Value& jf : jm.at("folds").as_array()) {
      std::vector<std::string> names;
      for (const auto& n : jf.at("class_names").as_array()) names.push_back(n.as_string());
      const json::Value& report = jf.at("report");
      ConfusionMatrix cm;
      for (const auto& row : report.at("confusion_matrix").as_array()) {
        cm.emplace_back();
        for (const auto& x : row.as_array()) cm.back().push_back(static_cast<int64_t>(x.as_number()));
      }
      std::optional<double> auc;
      if (report.as_object().count("roc_auc") && report.at("roc_auc").is_number()) auc = report.at("roc_auc").as_number();
      m.folds.push_back({static_cast<int64_t>(jf.at("fold").as_number()),
                         report_from_confusion(std::move(cm), std::move(names), auc), jf.at("extra").as_object()});
    }
    r.models.push_back(std::move(m));
  }
  validate_results(r);
  return r;
}

// model,fold,test_clips,accuracy,precision,recall,f1,roc_auc,macro_precision,
// macro_recall,macro_f1,data — one row per model per fold, then per model a
// "mean" and a "std" row; data is "synthetic" or "real".
inline std::string to_csv(const Results& results) {
  validate_results(results);
  std::string out =
      "model,fold,test_clips,accuracy,precision,recall,f1,roc_auc,macro_precision,macro_recall,macro_f1,data\n";
  const std::string data = results.synthetic ? "synthetic" : "real";
  using detail::csv_number;
  for (const ModelResults& m : results.models) {
    const std::string name = detail::csv_field(m.model);
    for (const FoldResult& f : m.folds) {
      const ClassificationReport& r = f.report;
      out += name + "," + std::to_string(f.fold) + "," + std::to_string(r.num_samples()) + "," +
             csv_number(r.accuracy) + "," + csv_number(r.weighted_avg.precision) + "," +
             csv_number(r.weighted_avg.recall) + "," + csv_number(r.weighted_avg.f1) + "," +
             (r.roc_auc ? csv_number(*r.roc_auc) : "") + "," + csv_number(r.macro_avg.precision) + "," +
             csv_number(r.macro_avg.recall) + "," + csv_number(r.macro_avg.f1) + "," + data + "\n";
    }
    const ResultsSummary s = summarize(m);
    auto row = [&](const char* what, double MeanStd::*field) {
      out += name + "," + what + ",," + csv_number(s.accuracy.*field) + "," + csv_number(s.precision.*field) + "," +
             csv_number(s.recall.*field) + "," + csv_number(s.f1.*field) + "," +
             (s.roc_auc ? csv_number((*s.roc_auc).*field) : "") + ",,,," + data + "\n";
    };
    row("mean", &MeanStd::mean);
    row("std", &MeanStd::std);
  }
  return out;
}

// Atomic writes: the content is built (and validated) first, then replaces
// the file in one rename, so an error leaves the previous file as it was.
inline void write_results_json(const Results& results, const std::string& path) {
  write_file_atomically(path, json::dump(to_json(results), 2) + "\n");
}

inline void write_results_csv(const Results& results, const std::string& path) {
  write_file_atomically(path, to_csv(results));
}

inline void write_results_markdown(const Results& results, const std::string& path,
                                   const MarkdownOptions& options = {}) {
  write_file_atomically(path, to_markdown(results, options));
}

inline Results read_results_json(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  STPAIN_CHECK(in.good(), FormatError, path, ": cannot open results file");
  std::stringstream text;
  text << in.rdbuf();
  try {
    return results_from_json(json::parse(text.str()));
  } catch (const std::exception& e) {
    throw FormatError(path + ": not a results file: " + e.what());
  }
}

}  // namespace stpain
