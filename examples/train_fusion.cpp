// Beyond the paper: both pipelines together, on the same subject-independent
// folds. Rows: the visual branch alone (ConvNeXt features + LSTM head), the
// landmark branch alone (STGCN-LSTM), their late fusion (the mean of the two
// models' pain probabilities) and a jointly trained mid fusion (models/fusion.hpp),
// started from the two trained branches (--mid-init scratch: from random weights).
//   bazel run --config=opt //examples:train_fusion -- --features F.safetensors --tidy landmarks.csv --out out/fusion
// Clips are matched by id (both files come from the same PEMF root). As in
// train_stgcn, SMOTE oversamples the training clips of each fold (on the
// joined visual + landmark clip, so a synthetic clip is one clip of both).
#include <cstdio>
#include <map>

#include "examples/cli.hpp"
#include "examples/experiment.hpp"
#include "stpain/data/landmark_csv.hpp"
#include "stpain/graph/landmark_graphs.hpp"
#include "stpain/io/clip_features.hpp"
#include "stpain/models/fusion.hpp"
#include "stpain/models/model_card.hpp"
#include "stpain/train/keras_init.hpp"
#include "stpain/train/landmark_normalize.hpp"
#include "stpain/train/scaler.hpp"
#include "stpain/train/smote.hpp"
#include "stpain/train/splits.hpp"

using namespace stpain;

int main(int argc, char** argv) {
  std::string features_path, tidy, out = "out/fusion", block = "paper", smote_mode = "on", class_weights = "none", mid_init = "branches", device_name = "cpu";
  int64_t epochs = 40, visual_epochs = 0, mid_epochs = 0, batch = 8, folds = 5, seed = 2001, threads = 2;
  double lr = 1e-3, mid_lr_scale = 0.1;
  bool synthetic = false;
  examples::Cli cli("train_fusion", "visual and landmark pipelines alone, late fusion and joint mid fusion, same folds");
  cli.path_option("--features", features_path, "clip features from extract_features --pemf (required)")
      .path_option("--tidy", tidy, "tidy landmarks CSV of the same clips from extract_landmarks (required)")
      .path_option("--out", out, "output folder")
      .option("--block", block, "landmark branch block: paper, paper-averaging or stgcn")
      .option("--epochs", epochs, "epochs per model and fold")
      .option("--visual-epochs", visual_epochs, "epochs of the visual branch alone (0: --epochs; it is cheap to train longer)")
      .option("--mid-init", mid_init, "branches (start from the two trained branches, at their logit mean) or scratch")
      .option("--mid-epochs", mid_epochs, "epochs of the mid fusion (0: --epochs)")
      .option("--mid-lr-scale", mid_lr_scale, "with --mid-init branches: its learning rate is --lr times this")
      .option("--batch", batch, "clips per batch")
      .option("--lr", lr, "initial learning rate")
      .option("--smote", smote_mode, "on or off: SMOTE (k=5) on the training clips")
      .option("--class-weights", class_weights, "none or balanced")
      .option("--folds", folds, "subject-independent folds")
      .flag("--synthetic", synthetic, "label every table as synthetic data")
      .option("--seed", seed, "seed")
      .option("--threads", threads, "CPU threads")
      .option("--device", device_name, "cpu, or cuda (a build with --config=cuda and a GPU)");
  if (!cli.parse(argc, argv)) return cli.exit_code();
  try {
    STPAIN_CHECK(!features_path.empty() && !tidy.empty(), Error, "--features and --tidy are required");
    STPAIN_CHECK(smote_mode == "on" || smote_mode == "off", Error, "--smote must be on or off");
    STPAIN_CHECK(mid_init == "branches" || mid_init == "scratch", Error, "--mid-init must be branches or scratch");
    STPAIN_CHECK(class_weights == "none" || class_weights == "balanced", Error, "--class-weights must be none or balanced");
    set_num_threads(static_cast<int>(threads));
    const examples::Device device = examples::parse_device(device_name);
    examples::require_device(device);
    const ClipFeatures f = load_clip_features(features_path);
    const LandmarkDataset lm = read_tidy_landmarks_csv(tidy);
    // Clips present in both, in the features file's order.
    std::map<std::string, int64_t> landmark_row;
    for (size_t i = 0; i < lm.clip_ids.size(); ++i) landmark_row[lm.clip_ids[i]] = static_cast<int64_t>(i);
    std::vector<int64_t> feature_rows, landmark_rows, labels, subjects;
    for (int64_t i = 0; i < f.clips(); ++i) {
      auto it = landmark_row.find(f.clip_ids[static_cast<size_t>(i)]);
      if (it == landmark_row.end()) continue;
      feature_rows.push_back(i);
      landmark_rows.push_back(it->second);
      labels.push_back(f.labels[static_cast<size_t>(i)]);
      subjects.push_back(f.subjects[static_cast<size_t>(i)]);
    }
    STPAIN_CHECK(!feature_rows.empty(), Error, features_path, " and ", tidy, " share no clip id");
    STPAIN_CHECK(lm.frames() == f.frames(), Error, "landmark clips have ", lm.frames(), " frames, feature clips ", f.frames());
    const int64_t n = static_cast<int64_t>(feature_rows.size()), t = f.frames(), dim = f.dim(), v = 68;
    std::printf("%lld clips in both files (%lld features, %lld landmark clips)\n", static_cast<long long>(n),
                static_cast<long long>(f.clips()), static_cast<long long>(lm.clips()));
    const LabelledSet visual = LabelledSet{f.features, f.labels}.rows(feature_rows);
    const LabelledSet points = LabelledSet{normalize_landmark_clips(lm.points), lm.labels}.rows(landmark_rows);

    const BlockKind kind = parse_block_kind(block);
    const GraphSpec graph = GraphSpec::of<FaceMesh68>();
    const auto fold_list = make_folds(Protocol::subject, labels, subjects, {.folds = folds, .seed = static_cast<uint64_t>(seed)});
    Results results;
    results.title = "Beyond the paper: visual + landmark fusion";
    results.protocol = "subject-independent " + std::to_string(folds) + "-fold";
    results.dataset = features_path + " + " + tidy;
    results.synthetic = synthetic;
    const FitOptions fit_options{
        .epochs = epochs, .batch = batch, .lr = lr,
        .class_weights = class_weights == "balanced" ? ClassWeighting::balanced : ClassWeighting::none,
        .seed = static_cast<uint64_t>(seed)};
    const SequenceHeadOptions head{.input_size = dim};

    for (size_t k = 0; k < fold_list.size(); ++k) {
      const Fold& fold = fold_list[k];
      std::printf("\nfold %zu: %s\n", k, describe_fold(fold, labels).c_str());
      // Landmark scaling fitted on the training clips only.
      LabelledSet lt = points.rows(fold.train), lv = points.rows(fold.validation), ls = points.rows(fold.test);
      StandardScaler scaler;
      scaler.fit(lt.x.reshape({-1, v * 2}));
      for (LabelledSet* s : {&lt, &lv, &ls}) s->x = scaler.transform(s->x.reshape({-1, v * 2})).reshape(s->x.shape());
      LabelledSet vt = visual.rows(fold.train);
      const LabelledSet vv = visual.rows(fold.validation), vs = visual.rows(fold.test);
      // One input tensor per clip for the mid fusion, [T, F + 136]: features then landmarks.
      auto joint = [&](const LabelledSet& a, const LabelledSet& b) {
        return LabelledSet{concat_last_dim<float, cpu>({a.x, b.x.reshape({a.size(), t, v * 2})}), a.y};
      };
      LabelledSet jt = joint(vt, lt);
      if (smote_mode == "on") {
        const SmoteResult s = smote(jt.x.reshape({jt.size(), -1}), jt.y, {.k_neighbors = 5, .random_state = static_cast<uint32_t>(seed)});
        std::printf("SMOTE: %lld training clips -> %lld\n", static_cast<long long>(jt.size()), static_cast<long long>(s.x.size(0)));
        jt = {s.x.reshape({s.x.size(0), t, dim + v * 2}), s.y};
        vt = {slice_last_dim(jt.x, 0, dim), jt.y};
        lt = {slice_last_dim(jt.x, dim, v * 2).reshape({jt.size(), t, v, 2}), jt.y};
      }
      auto run = [&](const std::string& name) {
        return examples::FoldRun{name, static_cast<int64_t>(k), out, fit_options, device};
      };

      // The single-branch checkpoints carry model cards, so predict can run
      // them alone or late-fused (--model visual,landmarks).
      auto run_with_card = [&](const std::string& name, const ModelCard& card) {
        examples::FoldRun r = run(name);
        r.fit.checkpoint_metadata = card.entries();
        return r;
      };
      const ModelCard visual_card = examples::sequence_head_card("lstm", f);
      const ModelCard landmark_card = ModelCard()
                                          .set("stpain.model", "stgcn")
                                          .set("stgcn.block", block)
                                          .set("stgcn.graph", "mesh")
                                          .set("stgcn.lstm", "true")
                                          .set("landmarks.normalize", "clip")
                                          .set("landmarks.frames", t)
                                          .set("scaler.mean", scaler.mean())
                                          .set("scaler.scale", scaler.scale());

      std::vector<double> visual_pain, landmark_pain;
      manual_seed(static_cast<uint64_t>(seed) + k);
      LstmHead<cpu> visual_model(head);
      keras_init(visual_model);
      examples::FoldRun visual_run = run_with_card("ConvNeXt + LSTM", visual_card);
      if (visual_epochs > 0) visual_run.fit.epochs = visual_epochs;
      results.add("ConvNeXt + LSTM", examples::train_and_test(visual_model, visual_run, vt, vv, vs, &visual_pain));
      with_stgcn_network(kind, {}, graph, [&](auto& net) {
        keras_init(net);
        results.add("STGCN + LSTM",
                    examples::train_and_test(net, run_with_card("STGCN + LSTM", landmark_card), lt, lv, ls, &landmark_pain));
        std::vector<double> late(visual_pain.size());
        std::vector<int64_t> late_predicted;
        for (size_t i = 0; i < late.size(); ++i) {
          late[i] = 0.5 * (visual_pain[i] + landmark_pain[i]);
          late_predicted.push_back(late[i] >= 0.5);
        }
        results.add("late fusion (mean probability)", evaluate_fold(static_cast<int64_t>(k), ls.y, late_predicted, late));

        with_mid_fusion(kind, dim, head, {}, graph, [&](auto& model) {
          keras_init(model);
          examples::FoldRun mid_run = run_with_card("mid fusion (joint)", ModelCard()
                                                                              .set("stpain.model", "mid_fusion")
                                                                              .set("stgcn.block", block)
                                                                              .set("stgcn.graph", "mesh")
                                                                              .set("head.input_size", dim));
          if (mid_init == "branches") {
            model.init_from_branches(visual_model, net);
            mid_run.fit.lr = lr * mid_lr_scale;
          }
          if (mid_epochs > 0) mid_run.fit.epochs = mid_epochs;
          results.add("mid fusion (joint)", examples::train_and_test(model, mid_run, jt, joint(vv, lv), joint(vs, ls)));
        });
      });
    }
    examples::write_results(results, out);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "train_fusion: %s\n", e.what());
    return 1;
  }
  return 0;
}
