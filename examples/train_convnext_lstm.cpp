// Experiment 1: ConvNeXt frame features -> the four LSTM heads (the paper's
// Table 2), plus a per-frame classifier on the same features with a clip vote
// (its Table 1 "ConvNeXtXL" row), over cross-validation folds.
//   bazel run --config=opt //examples:train_convnext_lstm -- --features feats.safetensors --out out/exp1
// The features come from extract_features (--pemf ROOT gives one tensor per clip).
#include <cstdio>
#include <filesystem>
#include <set>

#include "examples/cli.hpp"
#include "examples/experiment.hpp"
#include "stpain/io/clip_features.hpp"
#include "stpain/models/from_card.hpp"
#include "stpain/train/keras_init.hpp"
#include "stpain/train/splits.hpp"

using namespace stpain;

namespace {

struct Options {
  std::string features, out = "out/convnext_lstm", head = "all", protocol = "subject", baseline = "mlp";
  std::string class_weights = "balanced", init = "keras", device = "cpu";
  int64_t epochs = 100, batch = 8, folds = 5, seed = 2001, threads = 2, decay_steps = 1000;
  double lr = 1e-3, decay_rate = 0.96;
  bool smooth_decay = false, synthetic = false, no_baseline = false;
};

// "ConvNeXt tiny from x.safetensors (...)" -> "ConvNeXt-tiny".
std::string backbone_name(const ClipFeatures& f) {
  auto it = f.provenance.find("backbone");
  if (it == f.provenance.end()) return "features";
  std::string b = it->second;
  if (b.rfind("ConvNeXt ", 0) == 0) {
    const auto space = b.find(' ', 9);
    return "ConvNeXt-" + b.substr(9, space == std::string::npos ? std::string::npos : space - 9);
  }
  return b.substr(0, b.find(' '));
}

// Per-frame samples: every frame of the given clips, labelled with its clip's label.
LabelledSet frames_of(const ClipFeatures& f, const std::vector<int64_t>& clips) {
  const int64_t t = f.frames(), d = f.dim();
  LabelledSet s{Tensor<float>::empty({static_cast<int64_t>(clips.size()) * t, d}), {}};
  for (size_t i = 0; i < clips.size(); ++i) {
    std::copy_n(f.features.data() + clips[i] * t * d, t * d, s.x.data() + static_cast<int64_t>(i) * t * d);
    for (int64_t k = 0; k < t; ++k) s.y.push_back(f.labels[static_cast<size_t>(clips[i])]);
  }
  return s;
}

// A clip's probabilities are the mean of its frames' (the clip vote).
FoldResult per_frame_fold(const ClipFeatures& f, const Fold& fold, int64_t k, const Options& o, const FitOptions& fit_options,
                          const std::string& model_name, examples::Device device) {
  const LabelledSet train = frames_of(f, fold.train), val = frames_of(f, fold.validation);
  std::vector<int64_t> test_labels;
  for (int64_t c : fold.test) test_labels.push_back(f.labels[static_cast<size_t>(c)]);
  // The per-frame classifier: features -> (256 hidden, ReLU, dropout ->) 2 classes.
  const ModelCard card = ModelCard()
                             .set("stpain.model", "frame_classifier")
                             .set("frame.input_size", f.dim())
                             .set("frame.hidden", o.baseline == "linear" ? 0 : 256);
  FoldResult r;
  with_model_from_card(card, [&](auto& model) {
    examples::FoldRun run{model_name, k, o.out, fit_options, device};
    run.fit.batch = std::max<int64_t>(fit_options.batch * f.frames(), 32);  // as many frames per step as the heads see
    run.fit.checkpoint_metadata = card.entries();
    // Train and select on frames; evaluate on clips by voting.
    std::vector<double> frame_pain;
    const FoldResult frame_result = examples::train_and_test(model, run, train, val, frames_of(f, fold.test), &frame_pain);
    std::vector<double> pain(fold.test.size(), 0.0);
    std::vector<int64_t> predicted;
    for (size_t c = 0; c < fold.test.size(); ++c) {
      for (int64_t t = 0; t < f.frames(); ++t) pain[c] += frame_pain[c * static_cast<size_t>(f.frames()) + static_cast<size_t>(t)];
      pain[c] /= static_cast<double>(f.frames());
      predicted.push_back(pain[c] >= 0.5);
    }
    r = evaluate_fold(k, test_labels, predicted, pain);
    r.extra = frame_result.extra;
    r.extra["frame_accuracy"] = frame_result.report.accuracy;
  });
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  examples::Cli cli("train_convnext_lstm",
                    "Experiment 1: LSTM heads on ConvNeXt frame features (Table 2) and a per-frame baseline (Table 1)");
  cli.path_option("--features", o.features, "clip features from extract_features --pemf (required)")
      .path_option("--out", o.out, "output folder: results.{json,csv,md}, curves/, confusion/, checkpoints/")
      .option("--head", o.head, "lstm, bilstm, attention, stacked or all")
      .option("--protocol", o.protocol, "subject (grouped folds, no subject in two parts) or paper (clip-level 80/10/10)")
      .option("--folds", o.folds, "cross-validation folds")
      .option("--epochs", o.epochs, "epochs per fold (the authors' code: 100; the paper: 150)")
      .option("--batch", o.batch, "clips per batch")
      .option("--lr", o.lr, "initial learning rate (Adam, Keras epsilon)")
      .option("--decay-steps", o.decay_steps, "exponential decay: lr * rate^(step / decay_steps)")
      .option("--decay-rate", o.decay_rate, "exponential decay rate")
      .flag("--smooth-decay", o.smooth_decay, "decay every step instead of staircase")
      .option("--class-weights", o.class_weights, "balanced or none")
      .option("--init", o.init, "keras (the authors' framework: glorot, orthogonal, unit forget bias) or pytorch")
      .option("--baseline", o.baseline, "per-frame classifier: mlp or linear")
      .flag("--no-baseline", o.no_baseline, "skip the per-frame baseline")
      .flag("--synthetic", o.synthetic, "label every table as synthetic data")
      .option("--seed", o.seed, "seed for folds, weights and batch order")
      .option("--threads", o.threads, "CPU threads")
      .option("--device", o.device, "cpu, or cuda (a build with --config=cuda and a GPU)");
  if (!cli.parse(argc, argv)) return cli.exit_code();
  try {
    STPAIN_CHECK(!o.features.empty(), Error, "--features is required (make it with extract_features --pemf)");
    STPAIN_CHECK(o.class_weights == "balanced" || o.class_weights == "none", Error,
                 "--class-weights must be balanced or none, not \"", o.class_weights, "\"");
    STPAIN_CHECK(o.baseline == "mlp" || o.baseline == "linear", Error, "--baseline must be mlp or linear");
    STPAIN_CHECK(o.init == "keras" || o.init == "pytorch", Error, "--init must be keras or pytorch");
    set_num_threads(static_cast<int>(o.threads));
    const examples::Device device = examples::parse_device(o.device);
    examples::require_device(device);
    const ClipFeatures f = load_clip_features(o.features);
    const std::vector<std::string> heads =
        o.head == "all" ? std::vector<std::string>{"lstm", "bilstm", "attention", "stacked"} : std::vector<std::string>{o.head};
    const Protocol protocol = parse_protocol(o.protocol);
    const auto folds = make_folds(protocol, f.labels, f.subjects, {.folds = o.folds, .seed = static_cast<uint64_t>(o.seed)});
    const std::string backbone = backbone_name(f);
    const bool synthetic = o.synthetic || f.provenance.count("synthetic");
    std::printf("%s: %lld clips x %lld frames x %lld features (%s), %s protocol, %zu folds\n", o.features.c_str(),
                static_cast<long long>(f.clips()), static_cast<long long>(f.frames()), static_cast<long long>(f.dim()),
                backbone.c_str(), protocol_name(protocol), folds.size());

    Results results;
    results.title = "Experiment 1: " + backbone + " frame features + LSTM heads";
    results.protocol = protocol == Protocol::subject ? "subject-independent " + std::to_string(o.folds) + "-fold"
                                                     : "clip-level stratified 80/10/10, " + std::to_string(o.folds) + " folds";
    results.dataset = f.provenance.count("pemf_root") ? "PEMF layout at " + f.provenance.at("pemf_root") : o.features;
    results.synthetic = synthetic;
    results.metadata["features"] = o.features;
    results.metadata["backbone"] = f.provenance.count("backbone") ? f.provenance.at("backbone") : "";
    results.metadata["epochs"] = o.epochs;
    results.metadata["seed"] = o.seed;
    results.metadata["init"] = o.init;

    FitOptions fit_options{.epochs = o.epochs, .batch = o.batch, .lr = o.lr, .decay_steps = o.decay_steps,
                           .decay_rate = o.decay_rate, .staircase = !o.smooth_decay,
                           .class_weights = o.class_weights == "balanced" ? ClassWeighting::balanced : ClassWeighting::none,
                           .seed = static_cast<uint64_t>(o.seed)};
    const std::map<std::string, std::pair<std::string, std::string>> rows = {
        {"lstm", {" + LSTM", "ConvNeXtXL + LSTM"}},
        {"bilstm", {" + Bi-LSTM", "ConvNeXtXL + Bi-LSTM"}},
        {"attention", {" + LSTM with attention", "ConvNeXtXL + LSTM with attention"}},
        {"stacked", {" + stacked LSTM", "ConvNeXtXL + stacked LSTM"}}};
    for (size_t k = 0; k < folds.size(); ++k) {
      const Fold& fold = folds[k];
      std::printf("\nfold %zu: %s\n", k, describe_fold(fold, f.labels).c_str());
      const LabelledSet all{f.features, f.labels};
      const LabelledSet train = all.rows(fold.train), val = all.rows(fold.validation), test = all.rows(fold.test);
      for (const std::string& h : heads) {
        const auto& [suffix, paper_name] = rows.at(h);
        const std::string model_name = backbone + suffix;
        manual_seed(static_cast<uint64_t>(o.seed) + k);
        const ModelCard card = examples::sequence_head_card(h, f);
        with_model_from_card(card, [&](auto& head) {
          if (o.init == "keras") keras_init(head);
          examples::FoldRun run{model_name, static_cast<int64_t>(k), o.out, fit_options, device};
          run.fit.checkpoint_metadata = card.entries();
          results.add(model_name, examples::train_and_test(head, run, train, val, test));
        });
        results.model(model_name).reference = paper_name;
      }
      if (!o.no_baseline) {
        const std::string model_name = backbone + " per-frame " + o.baseline + " (clip vote)";
        manual_seed(static_cast<uint64_t>(o.seed) + k);
        results.add(model_name, per_frame_fold(f, fold, static_cast<int64_t>(k), o, fit_options, model_name, device));
        results.model(model_name).reference = "ConvNeXtXL";
      }
    }
    examples::write_results(results, o.out);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "train_convnext_lstm: %s\n", e.what());
    return 1;
  }
  return 0;
}
