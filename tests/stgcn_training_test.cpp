// STGCN-LSTM learns a planted pain movement (brow lowering, eye closure) on
// generated landmark clips across subjects, and nothing from shuffled labels.
#include <catch2/catch.hpp>

#include "stpain/graph/landmark_graphs.hpp"
#include "stpain/models/stgcn.hpp"
#include "stpain/synthetic/planted_landmarks.hpp"
#include "stpain/train/keras_init.hpp"
#include "stpain/train/landmark_normalize.hpp"
#include "stpain/train/scaler.hpp"
#include "stpain/train/splits.hpp"
#include "stpain/train/trainer.hpp"

using namespace stpain;

namespace {
// Mean test accuracy and ROC-AUC of a small STGCN-LSTM (the paper's block,
// narrower; Keras initialisation) over subject-independent folds, on clips
// normalised to their face frame, scaling fitted on training folds.
std::pair<double, double> cross_validate(const PlantedLandmarks& d, AttentionMode mode) {
  const auto folds = make_folds(Protocol::subject, d.labels, d.subjects, {.folds = 5, .seed = 7});
  const LabelledSet all{normalize_landmark_clips(d.points), d.labels};
  const auto masks = PaperSTGCNBlock<cpu>::hop_masks(GraphSpec::of<FaceMesh68>());
  double acc = 0, auc = 0;
  for (size_t k = 0; k < folds.size(); ++k) {
    LabelledSet train = all.rows(folds[k].train), val = all.rows(folds[k].validation), test = all.rows(folds[k].test);
    StandardScaler scaler;
    scaler.fit(train.x.reshape({-1, 136}));
    for (LabelledSet* s : {&train, &val, &test}) s->x = scaler.transform(s->x.reshape({-1, 136})).reshape(s->x.shape());
    manual_seed(20 + k);
    STGCNNetwork<PaperSTGCNBlock<cpu>> net({.channels = 12, .lstm = true, .lstm1 = 15, .lstm2 = 20, .dropout = 0.1}, 68,
                                           [&](int, int64_t in) {
                                             return PaperSTGCNBlock<cpu>({.in_channels = in, .temporal_channels = 8, .hidden = 8,
                                                                          .node_features = 16, .branch_channels = 4,
                                                                          .kernel1 = 5, .kernel2 = 7, .kernel3 = 9,
                                                                          .dropout = 0.1, .attention = mode},
                                                                         masks);
                                           });
    keras_init(net);
    // 20 epochs: at 15 the accuracy sat near the 95% bar and moved across it
    // with OpenBLAS's kernel choice (Haswell 96.8%, SkylakeX 99.3%); at 20
    // both give >= 98.5%.
    fit(net, train, val, {.epochs = 20, .batch = 10, .lr = 3e-3, .class_weights = ClassWeighting::balanced, .seed = 3 + k});
    const Tensor<float> p = predict_probabilities(net, test.x);
    std::vector<double> pain;
    for (int64_t i = 0; i < p.size(0); ++i) pain.push_back(p(i, 1));
    acc += accuracy(test.y, argmax(p));
    auc += roc_auc_score(test.y, pain);
  }
  return {acc / static_cast<double>(folds.size()), auc / static_cast<double>(folds.size())};
}
}  // namespace

TEST_CASE("STGCN-LSTM reaches 95% subject-independent accuracy on a planted pain movement") {
  const auto [acc, auc] = cross_validate(make_planted_landmarks({.intensity_min = 0.8, .intensity_max = 1.2, .seed = 3}), AttentionMode::averaging);
  INFO("accuracy " << acc << ", ROC-AUC " << auc);
  CHECK(acc >= 0.95);
}

TEST_CASE("STGCN-LSTM stays near chance with shuffled labels") {
  const auto [acc, auc] = cross_validate(make_planted_landmarks({.intensity_min = 0.8, .intensity_max = 1.2, .shuffle_labels = true, .seed = 3}), AttentionMode::averaging);
  INFO("accuracy " << acc << ", ROC-AUC " << auc);
  CHECK(auc > 0.35);
  CHECK(auc < 0.65);
}
