// Experiment 2: dlib landmarks -> STGCN and STGCN-LSTM (the paper's Table 3).
//   bazel run --config=opt //examples:train_stgcn -- --tidy landmarks.csv --out out/exp2
// Landmarks come from extract_landmarks: the tidy CSV (with subjects, so the
// subject-independent protocol works), the authors' CSV + labels CSV, or
// --pemf ROOT to run the detector here first (cached as <out>/landmarks.csv).
// Training folds only: standard scaling is fitted on them, SMOTE oversamples
// them, augmentation (optional) perturbs them.
#include <cstdio>
#include <filesystem>

#include "examples/cli.hpp"
#include "examples/experiment.hpp"
#include "stpain/data/landmark_csv.hpp"
#include "stpain/data/landmarks.hpp"
#include "stpain/data/pemf.hpp"
#include "stpain/graph/landmark_graphs.hpp"
#include "stpain/models/from_card.hpp"
#include "stpain/train/keras_init.hpp"
#include "stpain/train/landmark_augment.hpp"
#include "stpain/train/landmark_normalize.hpp"
#include "stpain/train/scaler.hpp"
#include "stpain/train/smote.hpp"
#include "stpain/train/splits.hpp"

using namespace stpain;
namespace fs = std::filesystem;

namespace {

struct Options {
  std::string landmarks, labels, tidy, pemf, out = "out/stgcn", model = "all", block = "paper", graph = "mesh";
  std::string protocol = "subject", smote = "on", class_weights = "none", normalize = "clip", init = "keras", device = "cpu";
  int64_t epochs = 150, batch = 10, folds = 5, seed = 42, threads = 2, decay_steps = 1000, augment = 0;
  double lr = 1e-4, decay_rate = 0.96;
  bool synthetic = false;
};

// Runs dlib over every PEMF clip (cached as a tidy CSV in the output folder).
LandmarkDataset landmarks_from_pemf(const Options& o) {
  const std::string cache = o.out + "/landmarks.csv";
  if (fs::exists(cache)) {
    std::printf("landmarks: reusing %s\n", cache.c_str());
    return read_tidy_landmarks_csv(cache);
  }
  const PemfIndex index = index_pemf(o.pemf);
  std::printf("%s: %s\n", o.pemf.c_str(), index.summary().c_str());
  LandmarkDetector detector;
  std::vector<ClipLandmarks> clips;
  Progress progress("landmarks (clips)", static_cast<int64_t>(index.clips.size()), stdout);
  for (const PemfClip& clip : index.clips) {
    ClipLandmarks c = detector.detect_clip(clip);
    carry_over_missing(c);
    if (c.has_face()) clips.push_back(std::move(c));
    else std::printf("\n  left out %s: no face in any frame\n", clip.id.c_str());
    progress.step(c.summary());
  }
  progress.finish();
  fs::create_directories(o.out);
  write_tidy_landmarks_csv(cache, clips);
  return read_tidy_landmarks_csv(cache);
}

// Scaling fitted on the training clips' frames, per (point, coordinate) column.
Tensor<float> scale_with(const StandardScaler& s, const Tensor<float>& clips) {
  const int64_t n = clips.size(0), t = clips.size(1);
  return s.transform(clips.reshape({n * t, -1})).reshape(clips.shape());
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  examples::Cli cli("train_stgcn", "Experiment 2: STGCN and STGCN-LSTM on dlib landmark clips (Table 3)");
  cli.path_option("--tidy", o.tidy, "tidy landmarks CSV from extract_landmarks (has subjects)")
      .path_option("--landmarks", o.landmarks, "the authors' landmarks CSV (needs --labels; no subjects)")
      .path_option("--labels", o.labels, "the authors' labels CSV (nopain/pain)")
      .path_option("--pemf", o.pemf, "a PEMF root: run dlib on every clip first")
      .path_option("--out", o.out, "output folder: results.{json,csv,md}, curves/, confusion/, checkpoints/")
      .option("--model", o.model, "stgcn, stgcn_lstm or all")
      .option("--block", o.block, "paper (recurrent attention), paper-averaging (the authors' final code) or stgcn (Yan et al.)")
      .option("--graph", o.graph, "mesh (the authors' 174 edges), contour (dlib's) or mesh-shifted (their index shift)")
      .option("--protocol", o.protocol, "subject (grouped folds, default) or paper (80/20 split, 5 repeats)")
      .option("--folds", o.folds, "folds (subject) or repeats (paper)")
      .option("--smote", o.smote, "on or off: SMOTE (k=5) on the training clips")
      .option("--augment", o.augment, "augmented copies of every training clip (rotation, scale, shift)")
      .option("--class-weights", o.class_weights, "none or balanced")
      .option("--normalize", o.normalize, "clip (each clip in its own face frame; default) or none (the authors')")
      .option("--init", o.init, "keras (the authors' framework: glorot, orthogonal) or pytorch")
      .option("--epochs", o.epochs, "epochs (the paper: 150)")
      .option("--batch", o.batch, "clips per batch")
      .option("--lr", o.lr, "initial learning rate")
      .option("--decay-steps", o.decay_steps, "exponential decay: lr * rate^floor(step / decay_steps)")
      .option("--decay-rate", o.decay_rate, "exponential decay rate")
      .flag("--synthetic", o.synthetic, "label every table as synthetic data")
      .option("--seed", o.seed, "seed for splits, SMOTE, weights and batch order")
      .option("--threads", o.threads, "CPU threads")
      .option("--device", o.device, "cpu, or cuda (a build with --config=cuda and a GPU)");
  if (!cli.parse(argc, argv)) return cli.exit_code();
  try {
    const int inputs = !o.tidy.empty() + !o.landmarks.empty() + !o.pemf.empty();
    STPAIN_CHECK(inputs == 1, Error, "give exactly one of --tidy, --landmarks (+ --labels) or --pemf");
    STPAIN_CHECK(o.smote == "on" || o.smote == "off", Error, "--smote must be on or off");
    STPAIN_CHECK(o.normalize == "clip" || o.normalize == "none", Error, "--normalize must be clip or none");
    STPAIN_CHECK(o.init == "keras" || o.init == "pytorch", Error, "--init must be keras or pytorch");
    set_num_threads(static_cast<int>(o.threads));
    const examples::Device device = examples::parse_device(o.device);
    examples::require_device(device);
    parse_block_kind(o.block);  // a bad --block or --graph stops here, before any work
    landmark_graph_named(o.graph);
    const Protocol protocol = parse_protocol(o.protocol);
    LandmarkDataset data;
    if (!o.pemf.empty()) data = landmarks_from_pemf(o);
    else if (!o.tidy.empty()) data = read_tidy_landmarks_csv(o.tidy);
    else data = read_authors_landmarks(o.landmarks, o.labels);
    for (size_t i = 0; i < data.labels.size(); ++i)
      STPAIN_CHECK(data.labels[i] == 0 || data.labels[i] == 1, Error, "clip ", i,
                   data.clip_ids.empty() ? "" : " (" + data.clip_ids[i] + ")", " has no pain/no-pain label");
    STPAIN_CHECK(protocol == Protocol::paper || !data.subjects.empty(), Error,
                 "the authors' CSV has no subject ids: use --protocol paper, or a tidy CSV for subject-independent folds");
    if (o.normalize == "clip") data.points = normalize_landmark_clips(data.points);
    const int64_t n = data.clips(), t = data.frames(), v = data.points.size(2);
    std::printf("landmarks: %lld clips x %lld frames x %lld points (%lld no pain, %lld pain), graph %s, block %s\n",
                static_cast<long long>(n), static_cast<long long>(t), static_cast<long long>(v),
                static_cast<long long>(std::count(data.labels.begin(), data.labels.end(), 0)),
                static_cast<long long>(std::count(data.labels.begin(), data.labels.end(), 1)), o.graph.c_str(), o.block.c_str());

    const std::vector<Fold> folds =
        protocol == Protocol::subject
            ? make_folds(protocol, data.labels, data.subjects, {.folds = o.folds, .seed = static_cast<uint64_t>(o.seed)})
            : repeated_train_test_splits(data.labels, o.folds, {.test_fraction = 0.2, .seed = static_cast<uint64_t>(o.seed), .stratify = false});
    Results results;
    results.title = "Experiment 2: dlib landmarks + STGCN (" + o.block + " block, " + o.graph + " graph)";
    results.protocol = protocol == Protocol::subject ? "subject-independent " + std::to_string(o.folds) + "-fold"
                                                     : "80/20 split, " + std::to_string(o.folds) + " repeated runs";
    results.dataset = !o.pemf.empty() ? "PEMF layout at " + o.pemf : (!o.tidy.empty() ? o.tidy : o.landmarks);
    results.synthetic = o.synthetic;
    results.metadata["smote"] = o.smote;
    results.metadata["normalize"] = o.normalize;
    results.metadata["init"] = o.init;
    results.metadata["epochs"] = o.epochs;
    results.metadata["seed"] = o.seed;
    const std::vector<std::string> models =
        o.model == "all" ? std::vector<std::string>{"stgcn", "stgcn_lstm"} : std::vector<std::string>{o.model};
    for (const auto& m : models)
      STPAIN_CHECK(m == "stgcn" || m == "stgcn_lstm", Error, "--model must be stgcn, stgcn_lstm or all, not \"", m, "\"");

    const FitOptions fit_options{.epochs = o.epochs, .batch = o.batch, .lr = o.lr, .decay_steps = o.decay_steps,
                                 .decay_rate = o.decay_rate,
                                 .class_weights = o.class_weights == "balanced" ? ClassWeighting::balanced : ClassWeighting::none,
                                 .seed = static_cast<uint64_t>(o.seed)};
    for (size_t k = 0; k < folds.size(); ++k) {
      const Fold& fold = folds[k];
      std::printf("\nfold %zu: %s\n", k, describe_fold(fold, data.labels).c_str());
      const LabelledSet all{data.points, data.labels};
      LabelledSet train = all.rows(fold.train), val = all.rows(fold.validation), test = all.rows(fold.test);
      // Augmented copies, then scaling and SMOTE: all fitted on the training clips only.
      if (o.augment > 0) {
        Generator g(static_cast<uint64_t>(o.seed) * 1000 + k);
        const int64_t base = train.size();
        LabelledSet grown{Tensor<float>::empty(train.x.shape().with(0, base * (1 + o.augment))), train.y};
        std::copy(train.x.begin(), train.x.end(), grown.x.begin());
        for (int64_t a = 0; a < o.augment; ++a)
          for (int64_t i = 0; i < base; ++i) {
            const Tensor<float> aug = augment_landmark_clip(train.x.slice(i, i + 1).reshape({t, v, 2}), {}, g);
            std::copy(aug.begin(), aug.end(), grown.x.data() + ((1 + a) * base + i) * t * v * 2);
            grown.y.push_back(train.y[static_cast<size_t>(i)]);
          }
        train = grown;
      }
      StandardScaler scaler;
      scaler.fit(train.x.reshape({train.size() * t, v * 2}));
      train.x = scale_with(scaler, train.x);
      if (val.size()) val.x = scale_with(scaler, val.x);
      test.x = scale_with(scaler, test.x);
      if (o.smote == "on") {
        const SmoteResult s = smote(train.x.reshape({train.size(), -1}), train.y, {.k_neighbors = 5, .random_state = static_cast<uint32_t>(o.seed)});
        std::printf("SMOTE: %lld training clips -> %lld\n", static_cast<long long>(train.size()), static_cast<long long>(s.x.size(0)));
        train = {s.x.reshape({s.x.size(0), t, v, 2}), s.y};
      }
      for (const std::string& m : models) {
        const bool lstm = m == "stgcn_lstm";
        const std::string name = lstm ? "STGCN + LSTM" : "STGCN";
        manual_seed(static_cast<uint64_t>(o.seed) + k);
        // What predict needs to rebuild and feed this model.
        const ModelCard card = ModelCard()
                                   .set("stpain.model", "stgcn")
                                   .set("stgcn.block", o.block)
                                   .set("stgcn.graph", o.graph)
                                   .set("stgcn.lstm", lstm ? "true" : "false")
                                   .set("landmarks.normalize", o.normalize)
                                   .set("landmarks.frames", t)
                                   .set("scaler.mean", scaler.mean())
                                   .set("scaler.scale", scaler.scale());
        with_model_from_card(card, [&](auto& net) {
          if (o.init == "keras") keras_init(net);
          examples::FoldRun run{name, static_cast<int64_t>(k), o.out, fit_options};
          run.fit.checkpoint_metadata = card.entries();
          run.device = device;
          results.add(name, examples::train_and_test(net, run, train, val, test));
        });
      }
    }
    examples::write_results(results, o.out);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "train_stgcn: %s\n", e.what());
    return 1;
  }
  return 0;
}
