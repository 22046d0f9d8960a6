#include "stpain/models/convnext.hpp"

#include <catch2/catch.hpp>

#include "support/fixtures.hpp"
#include "support/gradcheck.hpp"

using namespace stpain;
using namespace stpain::testing;

static_assert(Layer<ConvNeXtBlock<cpu>>);
static_assert(Layer<ConvNeXt<cpu>>);

namespace {
// A tiny ConvNeXt for checks in double precision: 2 stages, 1 block each.
ConvNeXtConfig micro(int64_t classes) {
  ConvNeXtConfig c;
  c.name = "micro";
  c.depths = {1, 1};
  c.dims = {4, 6};
  c.num_classes = classes;
  c.layer_scale_init = 0.5;  // make the blocks matter in the check
  return c;
}
}  // namespace

TEST_CASE("ConvNeXt variants have the published sizes and timm's parameter names") {
  ConvNeXt<cpu> tiny(ConvNeXtConfig::variant("tiny"));
  CHECK(parameter_count(tiny) == 28589128);  // timm convnext_tiny, 1000 classes
  const auto names = parameter_names(tiny);
  CHECK(names.front() == "stem.0.weight");
  CHECK(std::find(names.begin(), names.end(), "stages.1.downsample.1.weight") != names.end());
  CHECK(std::find(names.begin(), names.end(), "stages.2.blocks.8.mlp.fc2.bias") != names.end());
  CHECK(std::find(names.begin(), names.end(), "stages.3.blocks.2.gamma") != names.end());
  CHECK(std::find(names.begin(), names.end(), "stages.0.downsample.0.weight") == names.end());
  CHECK(names.back() == "head.fc.bias");
  ConvNeXt<cpu> atto(ConvNeXtConfig::variant("atto", 0));
  CHECK(parameter_count(atto) == 3374520);  // torchvision ConvNeXt with atto settings, minus classifier.2
  CHECK_THROWS_WITH(ConvNeXtConfig::variant("huge"), Catch::Contains("tiny") && Catch::Contains("xlarge"));
}

TEST_CASE("ConvNeXt maps images to logits or pooled features and checks its input") {
  manual_seed(1);
  ConvNeXt<cpu> net(micro(3));
  net.eval();
  const auto x = Tensor<float>::full({2, 3, 64, 64}, 0.5f);
  CHECK(net.forward(x).shape() == Shape{2, 3});
  CHECK(net.forward_features(x).shape() == Shape{2, 6});
  CHECK_THROWS_WITH(net.forward(Tensor<float>({2, 64, 64, 3})), Catch::Contains("[2, 64, 64, 3]"));
  CHECK_THROWS_WITH(net.forward(Tensor<float>({1, 3, 16, 16})), Catch::Contains("32x32"));
}

TEST_CASE("a ConvNeXt block passes the gradient check") {
  auto block = make_convnext_block<cpu, double>(5, 0.0, 0.7, 1e-6);
  check_gradients(block, random_tensor({2, 7, 6, 5}, 11));
}

TEST_CASE("a whole small ConvNeXt passes the gradient check, with and without its classifier") {
  manual_seed(2);
  ConvNeXt<cpu, double> net(micro(3));
  check_gradients(net, random_tensor({1, 3, 32, 32}, 12), {.max_entries = 40});
  ConvNeXt<cpu, double> features(micro(0));
  check_gradients(features, random_tensor({2, 3, 32, 32}, 13), {.max_entries = 40});
}

TEST_CASE("drop path rates rise linearly over the blocks, and eval turns them off") {
  auto config = micro(0);
  config.depths = {2, 2};
  config.drop_path_rate = 0.3;
  ConvNeXt<cpu, double> net(config);
  // linspace(0, 0.3, 4): the last block drops with p = 0.3.
  auto& last = net.stages()[1].blocks()[1].block().get<4>();
  CHECK(last.options().p == Approx(0.3));
  CHECK(net.stages()[0].blocks()[1].block().get<4>().options().p == Approx(0.1));
  net.eval();
  const auto x = random_tensor({2, 3, 32, 32}, 14);
  CHECK(net.forward(x).to_vector() == net.forward(x).to_vector());
}
