#pragma once
// fit() of a model given by its card and weights instead of its type: the
// model is rebuilt on backend B, takes `weights`, is trained, predicts the
// test set, and hands the best epoch's weights back. This is how a program
// built for the cpu backend trains on the GPU: the CUDA translation unit
// (gpu/cuda_training.cu) instantiates it with B = cuda, and the program only
// exchanges host tensors with it.
#include "stpain/io/state_dict.hpp"
#include "stpain/models/from_card.hpp"
#include "stpain/train/trainer.hpp"

namespace stpain {

struct CardFit {
  FitResult fit;
  Tensor<float> test_probabilities;  // [N, classes] on the host
};

// fit(), then the class probabilities of test_x (when it has rows).
template <class Model>
CardFit fit_and_predict(Model& model, const LabelledSet& train, const LabelledSet& validation, const Tensor<float>& test_x,
                        const FitOptions& options) {
  CardFit out{fit(model, train, validation, options), {}};
  if (test_x.defined() && test_x.size(0) > 0) out.test_probabilities = predict_probabilities(model, test_x);
  return out;
}

template <class B>
CardFit fit_card_model(const ModelCard& card, NamedTensors& weights, const LabelledSet& train,
                       const LabelledSet& validation, const Tensor<float>& test_x, const FitOptions& options) {
  CardFit out;
  // Building the model draws initial weights from the default generator;
  // they are replaced, so the draws are undone: training then sees the random
  // stream (dropout) it would see continuing with the caller's model.
  const Generator before = default_generator();
  with_model_from_card<B>(card, [&](auto& model) {
    default_generator() = before;
    set_parameter_values(model, weights);
    out = fit_and_predict(model, train, validation, test_x, options);
    weights = parameter_values(model);
  });
  return out;
}

}  // namespace stpain
