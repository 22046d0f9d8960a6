// Training on the GPU as the programs' --device cuda does it
// (gpu/cuda_training.hpp): every model kind a card names, trained with
// Backend = cuda from the cpu model's weights, ends where fit() of the cpu
// model ends; ConvNeXt features on the GPU equal the cpu ones. Runs only in
// --config=cuda builds; without a GPU it checks the error and skips, unless
// STPAIN_REQUIRE_GPU=1 (--config=gpu).
#include <catch2/catch.hpp>

#include <cstdlib>
#include <string>

#include "gpu/card_fit_cases.hpp"
#include "gpu/cuda_parity.hpp"
#include "gpu/cuda_training.hpp"

using namespace stpain;

namespace {
// True when a GPU is there; otherwise checks what a user gets, and skips
// (fails under STPAIN_REQUIRE_GPU=1).
bool have_gpu() {
  std::string why;
  if (cuda_backend::device_count(&why) > 0) return true;
  const char* require = std::getenv("STPAIN_REQUIRE_GPU");
  if (require && std::string(require) == "1") FAIL("no CUDA device: " << why);
  CHECK_THROWS_WITH(cuda_backend::require_device(), Catch::Contains("no CUDA device"));
  WARN("skipped: " << why);
  return false;
}
}  // namespace

TEST_CASE("training on the GPU ends where fit() of the cpu model ends") {
  if (!have_gpu()) return;
  std::printf("GPU: %s\n", cuda_backend::device_name().c_str());
  card_fit::check_card_fits([](const ModelCard& card, NamedTensors& weights, const LabelledSet& train,
                               const LabelledSet& validation, const Tensor<float>& test_x, const FitOptions& o) {
    return cuda_backend::fit(card, weights, train, validation, test_x, o);
  });
}

TEST_CASE("ConvNeXt features on the GPU equal the cpu ones") {
  if (!have_gpu()) return;
  manual_seed(4);
  ConvNeXt<cpu> net(ConvNeXtConfig::variant("atto", 0));
  net.eval();
  const LabelledSet frames = card_fit::random_set({3, 64, 64}, 5, 7);
  const Tensor<float> expected = net.forward_features(frames.x);
  const auto on_gpu = cuda_backend::convnext_features(net.config(), parameter_values(net));
  CHECK(card_fit::max_relative_difference(on_gpu(frames.x), expected) < 1e-4);
}
