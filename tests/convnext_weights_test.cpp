#include "stpain/models/convnext_weights.hpp"

#include <catch2/catch.hpp>

#include <filesystem>

#include "support/fixtures.hpp"

using namespace stpain;
using namespace stpain::testing;
namespace fs = std::filesystem;

namespace {
std::string temp_path(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("stpain_cnx_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  return (dir / name).string();
}

}  // namespace

TEST_CASE("names convert between timm, official and torchvision in both directions") {
  const std::vector<std::array<std::string, 3>> rows = {
      {"stem.0.weight", "downsample_layers.0.0.weight", "features.0.0.weight"},
      {"stem.1.bias", "downsample_layers.0.1.bias", "features.0.1.bias"},
      {"stages.2.downsample.1.weight", "downsample_layers.2.1.weight", "features.4.1.weight"},
      {"stages.1.blocks.2.conv_dw.weight", "stages.1.2.dwconv.weight", "features.3.2.block.0.weight"},
      {"stages.3.blocks.0.norm.bias", "stages.3.0.norm.bias", "features.7.0.block.2.bias"},
      {"stages.0.blocks.1.mlp.fc1.weight", "stages.0.1.pwconv1.weight", "features.1.1.block.3.weight"},
      {"stages.2.blocks.26.mlp.fc2.bias", "stages.2.26.pwconv2.bias", "features.5.26.block.5.bias"},
      {"stages.2.blocks.4.gamma", "stages.2.4.gamma", "features.5.4.layer_scale"},
      {"head.norm.weight", "norm.weight", "classifier.0.weight"},
      {"head.fc.bias", "head.bias", "classifier.2.bias"},
  };
  for (const auto& [timm, official, tv] : rows) {
    INFO(timm);
    CHECK(convnext_name_to_timm(official, ConvNeXtNaming::official) == timm);
    CHECK(convnext_name_to_timm(tv, ConvNeXtNaming::torchvision) == timm);
    CHECK(convnext_name_to_timm("module." + official, ConvNeXtNaming::official) == timm);
    CHECK(convnext_name_from_timm(timm, ConvNeXtNaming::official) == official);
    CHECK(convnext_name_from_timm(timm, ConvNeXtNaming::torchvision) == tv);
  }
  CHECK(convnext_name_to_timm("features.1.0.block.1.weight", ConvNeXtNaming::torchvision).empty());
  CHECK_THROWS_AS(convnext_name_from_timm("encoder.weight", ConvNeXtNaming::official), Error);
}

TEST_CASE("a small ConvNeXt loads from F16 torchvision and BF16 timm files and matches PyTorch") {
  const safetensors::File expected(fixture_path("convnext.safetensors"));
  const auto x = expected.load("small.x");
  for (const auto& [file, tag, naming] :
       {std::tuple{"convnext_small_f16_torchvision.safetensors", "f16", ConvNeXtNaming::torchvision},
        std::tuple{"convnext_small_bf16_timm.safetensors", "bf16", ConvNeXtNaming::timm}}) {
    INFO(file);
    const safetensors::File ckpt(fixture_path(file));
    CHECK(detect_convnext_naming(ckpt) == naming);
    const ConvNeXtConfig config = infer_convnext_config(ckpt);
    CHECK(config.depths == std::vector<int64_t>{1, 1, 2, 1});
    CHECK(config.dims == std::vector<int64_t>{8, 16, 24, 32});
    CHECK(config.num_classes == 5);
    ConvNeXt<cpu> net(config);
    net.eval();
    const auto report = load_convnext_weights(net, ckpt);
    CHECK(report.naming == naming);
    CHECK(report.ok());
    expect_close(net.forward(x), expected.load(std::string("small.") + tag + ".logits"), "logits", 1e-4);
    expect_close(net.forward_features(x), expected.load(std::string("small.") + tag + ".features"), "features", 1e-4);
  }
}

TEST_CASE("the converter's renaming round-trips through the official naming") {
  const std::string official = temp_path("small_official.safetensors");
  convert_convnext_checkpoint(fixture_path("convnext_small_bf16_timm.safetensors"), official, ConvNeXtNaming::official);
  const safetensors::File f(official);
  CHECK(detect_convnext_naming(f) == ConvNeXtNaming::official);
  CHECK(f.contains("downsample_layers.0.0.weight"));
  CHECK(f.info("stages.2.1.pwconv1.weight").dtype == safetensors::DType::BF16);
  ConvNeXt<cpu> net(infer_convnext_config(f));
  net.eval();
  load_convnext_weights(net, f);
  const safetensors::File expected(fixture_path("convnext.safetensors"));
  expect_close(net.forward(expected.load("small.x")), expected.load("small.bf16.logits"), "logits", 1e-4);
  const std::string tv = temp_path("small_tv.safetensors");
  convert_convnext_checkpoint(official, tv, ConvNeXtNaming::torchvision, safetensors::DType::F32);
  const safetensors::File g(tv);
  CHECK(g.info("features.5.1.layer_scale").shape == Shape{24, 1, 1});
  CHECK(g.info("features.5.1.layer_scale").dtype == safetensors::DType::F32);
}

TEST_CASE("strict loading lists missing, unexpected and mis-shaped tensors; --no-head drops the classifier") {
  const safetensors::File ckpt(fixture_path("convnext_small_f16_torchvision.safetensors"));
  auto config = infer_convnext_config(ckpt);
  config.num_classes = 7;  // another classifier size
  ConvNeXt<cpu> net(config);
  CHECK_THROWS_WITH(load_convnext_weights(net, ckpt),
                    Catch::Contains("head.fc.weight: model [7, 32] vs file [5, 32]") && Catch::Contains(ckpt.path()));
  const auto report = load_convnext_weights(net, ckpt, {.strict = true, .no_head = true});
  CHECK(report.ok());
  CHECK(std::find(report.loaded.begin(), report.loaded.end(), "head.norm.weight") != report.loaded.end());
  config.depths = {1, 1, 3, 1};  // one block more than the file has
  ConvNeXt<cpu> deeper(config);
  CHECK_THROWS_WITH(load_convnext_weights(deeper, ckpt, {.no_head = true}),
                    Catch::Contains("missing") && Catch::Contains("stages.2.blocks.2.conv_dw.weight"));
  const std::string other = temp_path("not_convnext.safetensors");
  safetensors::save(other, {safetensors::entry("encoder.weight", Tensor<float>({2}))});
  CHECK_THROWS_WITH(detect_convnext_naming(safetensors::File(other)), Catch::Contains("encoder.weight"));
}
