#pragma once
// What the two experiment trainers share: one model trained and tested on one
// fold (fit on train, model selection on validation, metrics on test), its
// curves and confusion matrix as PNG and its best checkpoint, and the results
// tables written at the end (stdout, JSON, CSV, Markdown).
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <string>

#include "examples/device.hpp"
#include "stpain/core/progress.hpp"
#include "stpain/io/clip_features.hpp"
#include "stpain/models/model_card.hpp"
#include "stpain/data/plot.hpp"
#include "stpain/train/report.hpp"
#include "stpain/train/trainer.hpp"

namespace stpain::examples {

// "ConvNeXt-tiny + LSTM" -> "convnext-tiny_lstm": file names for a model.
inline std::string file_stem(const std::string& model) {
  std::string s;
  for (char c : model) {
    if (std::isalnum(static_cast<unsigned char>(c)) || c == '-') s += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    else if (!s.empty() && s.back() != '_') s += '_';
  }
  while (!s.empty() && s.back() == '_') s.pop_back();
  return s;
}

struct FoldRun {
  std::string model;      // table row name
  int64_t fold = 0;
  std::string out_dir;    // curves/, confusion/ and checkpoints/ go under it
  FitOptions fit;         // the checkpoint path is set here; its metadata is the model card
  Device device = Device::cpu;
};

// Trains `model` on the fold (on run.device), evaluates the best epoch on the test set, writes
// its curves, confusion matrix and checkpoint, and returns the fold's result
// (and, when asked, the test clips' pain probabilities, for late fusion).
template <class Model>
FoldResult train_and_test(Model& model, const FoldRun& run, const LabelledSet& train, const LabelledSet& validation,
                          const LabelledSet& test, std::vector<double>* test_pain = nullptr) {
  namespace fs = std::filesystem;
  const std::string stem = file_stem(run.model) + "_fold" + std::to_string(run.fold);
  for (const char* d : {"curves", "confusion", "checkpoints"}) fs::create_directories(fs::path(run.out_dir) / d);
  FitOptions fo = run.fit;
  fo.checkpoint = run.out_dir + "/checkpoints/" + stem + ".safetensors";
  Progress progress(run.model + " fold " + std::to_string(run.fold) + " epochs", fo.epochs, stdout);
  fo.on_epoch = [&](int64_t epoch, const std::string& line) { progress.update(epoch, line); };
  const CardFit trained = fit_on(run.device, model, ModelCard(fo.checkpoint_metadata), train, validation, test.x, fo);
  const FitResult& fit_result = trained.fit;
  progress.finish("best validation accuracy " + std::to_string(fit_result.best_val_accuracy) + " at epoch " +
                  std::to_string(fit_result.best_epoch));

  const Tensor<float>& p = trained.test_probabilities;
  std::vector<double> pain(static_cast<size_t>(p.size(0)));
  for (int64_t i = 0; i < p.size(0); ++i) pain[static_cast<size_t>(i)] = p(i, 1);
  FoldResult result = evaluate_fold(run.fold, test.y, argmax(p), pain);
  if (test_pain) *test_pain = pain;
  result.extra["best_epoch"] = fit_result.best_epoch;
  result.extra["best_val_accuracy"] = fit_result.best_val_accuracy;
  result.extra["train_clips"] = train.size();
  result.extra["validation_clips"] = validation.size();
  json::Array history;
  for (const EpochRecord& e : fit_result.history)
    history.push_back(json::Object{{"epoch", e.epoch}, {"train_loss", e.train_loss}, {"train_accuracy", e.train_accuracy},
                                   {"val_loss", e.val_loss}, {"val_accuracy", e.val_accuracy}, {"lr", e.lr}});
  result.extra["history"] = std::move(history);

  std::vector<double> tl, ta, vl, va;
  for (const EpochRecord& e : fit_result.history) {
    tl.push_back(e.train_loss);
    ta.push_back(e.train_accuracy);
    vl.push_back(e.val_loss);
    va.push_back(e.val_accuracy);
  }
  const std::string title = run.model + ", fold " + std::to_string(run.fold);
  plot_curves(run.out_dir + "/curves/" + stem + "_loss.png",
              {{"train loss", tl, {}, {}, false}, {"validation loss", vl, {}, {}, true}},
              {.title = title + ": loss", .x_label = "epoch", .y_label = "cross-entropy"});
  plot_curves(run.out_dir + "/curves/" + stem + "_accuracy.png",
              {{"train accuracy", ta, {}, {}, false}, {"validation accuracy", va, {}, {}, true}},
              {.title = title + ": accuracy", .x_label = "epoch", .y_label = "accuracy", .y_min = 0.0, .y_max = 1.0});
  plot_confusion_matrix(run.out_dir + "/confusion/" + stem + ".png", result.report.confusion, result.report.class_names,
                        {.title = title + " (test)"});
  std::printf("%s fold %lld: test accuracy %.3f, weighted F1 %.3f (%lld samples)\n", run.model.c_str(),
              static_cast<long long>(run.fold), result.report.accuracy, result.report.weighted_avg.f1,
              static_cast<long long>(test.size()));
  return result;
}

// The tables on stdout and as results.{json,csv,md} in out_dir.
inline void write_results(const Results& results, const std::string& out_dir) {
  std::filesystem::create_directories(out_dir);
  std::printf("\n");
  print_table(results, {.roc_auc = true});
  std::printf("\n%s\n", format_comparison(results).c_str());
  write_results_json(results, out_dir + "/results.json");
  write_results_csv(results, out_dir + "/results.csv");
  write_results_markdown(results, out_dir + "/results.md", {.roc_auc = true, .per_fold = true, .comparison = true});
  std::printf("results written to %s/results.{json,csv,md}; curves, confusion matrices and checkpoints beside them\n",
              out_dir.c_str());
}

// What predict needs to rebuild a sequence head and feed it: the head, and
// the backbone and preprocessing of the features it was trained on.
inline ModelCard sequence_head_card(const std::string& head, const ClipFeatures& f) {
  ModelCard card = ModelCard().set("stpain.model", "sequence_head").set("head.name", head).set("head.input_size", f.dim());
  card.set("frames", f.frames());
  for (const char* key : {"backbone", "backbone_arch", "backbone_weights", "backbone_seed", "image_size", "crop_pct", "face_crop"})
    if (f.provenance.count(key)) card.set(key, f.provenance.at(key));
  return card;
}

}  // namespace stpain::examples
