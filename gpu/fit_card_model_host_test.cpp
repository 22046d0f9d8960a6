// fit_card_model (train/fit_card_model.hpp), the path the CUDA trainers take,
// with Backend = thrust_host: the CUDA backend's kernels on the host.
#include "stpain/backend/thrust.hpp"  // first: the backend before any layer header

#include <catch2/catch.hpp>

#include "gpu/card_fit_cases.hpp"

using namespace stpain;
using card_fit::random_set;

TEST_CASE("fit_card_model on thrust_host ends where fit() of the cpu model ends") {
  card_fit::check_card_fits([](const ModelCard& card, NamedTensors& weights, const LabelledSet& train,
                               const LabelledSet& validation, const Tensor<float>& test_x, const FitOptions& o) {
    return fit_card_model<thrust_host>(card, weights, train, validation, test_x, o);
  });
}

TEST_CASE("weights that do not fit the card's model are refused, naming the parameter") {
  const ModelCard card = ModelCard().set("stpain.model", "frame_classifier").set("frame.input_size", 10).set("frame.hidden", 0);
  NamedTensors wrong{{"weight", Tensor<float>::zeros({2, 11})}, {"bias", Tensor<float>::zeros({2})}};
  const LabelledSet train = random_set({10}, 4, 1);
  CHECK_THROWS_WITH(fit_card_model<thrust_host>(card, wrong, train, {}, {}, {.epochs = 1}),
                    Catch::Contains("weight"));
  NamedTensors renamed{{"w", Tensor<float>::zeros({2, 10})}, {"bias", Tensor<float>::zeros({2})}};
  CHECK_THROWS_WITH(fit_card_model<thrust_host>(card, renamed, train, {}, {}, {.epochs = 1}),
                    Catch::Contains("parameter weight") && Catch::Contains("found w"));
  CHECK_THROWS_WITH(with_model_from_card(ModelCard().set("stpain.model", "resnet"), [](auto&) {}),
                    Catch::Contains("unknown \"stpain.model\" = \"resnet\""));
}
