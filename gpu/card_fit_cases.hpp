#pragma once
// The check behind fit_card_model_host_test and cuda_training_test: every
// model kind a card names, rebuilt from its card on another backend, given
// the cpu model's initial weights, trained and handed back, ends where fit()
// of the cpu model itself ends (train/fit_card_model.hpp, the path the
// programs' --device cuda takes). Include after the backend header; uses Catch.
#include <cmath>
#include <functional>

#include "stpain/train/fit_card_model.hpp"
#include "stpain/train/keras_init.hpp"

namespace stpain::card_fit {

using CardFitter = std::function<CardFit(const ModelCard&, NamedTensors&, const LabelledSet&, const LabelledSet&,
                                         const Tensor<float>&, const FitOptions&)>;

inline LabelledSet random_set(const Shape& clip, int64_t n, uint64_t seed) {
  Generator gen(seed);
  std::vector<int64_t> dims{n};
  dims.insert(dims.end(), clip.dims().begin(), clip.dims().end());
  LabelledSet s{Tensor<float>::empty(Shape(dims)), {}};
  for (float& v : s.x) v = static_cast<float>(gen.uniform(-1.0, 1.0));
  for (int64_t i = 0; i < n; ++i) s.y.push_back(i % 2);
  return s;
}

inline double max_relative_difference(const Tensor<float>& a, const Tensor<float>& e) {
  REQUIRE(a.shape() == e.shape());
  double diff = 0, scale = 0;
  for (int64_t i = 0; i < e.numel(); ++i) {
    diff = std::max(diff, std::fabs(double(a[i]) - double(e[i])));
    scale = std::max(scale, std::fabs(double(e[i])));
  }
  return diff == 0 ? 0.0 : diff / scale;
}

struct Case {
  ModelCard card;
  Shape clip;  // one sample's shape
  // Yan et al.'s block has biases just before a training-mode BatchNorm: their
  // gradient is 0 in exact arithmetic and rounding noise in float, which
  // Adam turns into full-size steps of random sign on either backend. They
  // do not change what the model computes (its losses and predictions are
  // compared), but the weights can't be compared.
  bool compare_weights = true;
};

inline std::vector<Case> cases() {
  return {
      {ModelCard().set("stpain.model", "sequence_head").set("head.name", "bilstm").set("head.input_size", 12), {6, 12}},
      {ModelCard().set("stpain.model", "stgcn").set("stgcn.block", "stgcn").set("stgcn.graph", "mesh").set("stgcn.lstm", "true"),
       {8, 68, 2}, false},
      {ModelCard().set("stpain.model", "stgcn").set("stgcn.block", "paper-averaging").set("stgcn.graph", "contour").set("stgcn.lstm", "false"),
       {8, 68, 2}},
      {ModelCard().set("stpain.model", "mid_fusion").set("stgcn.block", "paper-averaging").set("stgcn.graph", "mesh").set("head.input_size", 12),
       {8, 12 + 136}},
      {ModelCard().set("stpain.model", "frame_classifier").set("frame.input_size", 10).set("frame.hidden", 16), {10}},
      {ModelCard().set("stpain.model", "frame_classifier").set("frame.input_size", 10).set("frame.hidden", 0), {10}},
      {ModelCard().set("stpain.model", "convnext").set("convnext.arch", "atto").set("convnext.classes", 2).set("convnext.drop_path", "0.1"),
       {3, 32, 32}},
  };
}

// Trains every case with `fit_on_backend` (fit_card_model on another backend)
// and checks it against fit() of the cpu model.
inline void check_card_fits(const CardFitter& fit_on_backend) {
  const FitOptions options{.epochs = 2, .batch = 3, .lr = 3e-3, .class_weights = ClassWeighting::balanced};
  for (const Case& c : cases()) {
    INFO(c.card.get("stpain.model") << " " << c.card.get_or("stgcn.block", c.card.get_or("head.name", "")));
    const LabelledSet train = random_set(c.clip, 6, 1), validation = random_set(c.clip, 4, 2), test = random_set(c.clip, 3, 3);
    NamedTensors initial, expected_weights;
    FitResult expected;
    Tensor<float> expected_p;
    with_model_from_card<cpu>(c.card, [&](auto& model) {
      manual_seed(5);
      keras_init(model);
      initial = parameter_values(model);
      manual_seed(9);
      expected = fit(model, train, validation, options);
      expected_p = predict_probabilities(model, test.x);
      expected_weights = parameter_values(model);
    });

    // The same backend: the same bits (the weights' round trip loses nothing).
    NamedTensors same = initial;
    manual_seed(9);
    const CardFit on_cpu = fit_card_model<cpu>(c.card, same, train, validation, test.x, options);
    CHECK(on_cpu.fit.best_epoch == expected.best_epoch);
    CHECK(max_relative_difference(on_cpu.test_probabilities, expected_p) == 0.0);
    for (size_t i = 0; i < same.size(); ++i) CHECK(max_relative_difference(same[i].second, expected_weights[i].second) == 0.0);

    // The other backend: the same training within float rounding (two
    // epochs of it: 1e-3).
    NamedTensors weights = initial;
    manual_seed(9);
    const CardFit on_backend = fit_on_backend(c.card, weights, train, validation, test.x, options);
    REQUIRE(on_backend.fit.history.size() == expected.history.size());
    for (size_t e = 0; e < expected.history.size(); ++e) {
      CHECK(on_backend.fit.history[e].train_loss == Approx(expected.history[e].train_loss).epsilon(1e-3));
      CHECK(on_backend.fit.history[e].val_loss == Approx(expected.history[e].val_loss).epsilon(1e-3));
    }
    CHECK(on_backend.fit.best_epoch == expected.best_epoch);
    CHECK(max_relative_difference(on_backend.test_probabilities, expected_p) < 1e-3);
    REQUIRE(weights.size() == expected_weights.size());
    for (size_t i = 0; i < weights.size() && c.compare_weights; ++i) {
      INFO(weights[i].first);
      CHECK(weights[i].first == expected_weights[i].first);
      // Looser than the predictions: Adam turns small gradients (rounding
      // included) into steps of about lr, so small weights drift most.
      CHECK(max_relative_difference(weights[i].second, expected_weights[i].second) < 2e-2);
    }
  }
}

}  // namespace stpain::card_fit
