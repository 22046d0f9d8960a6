// ConvNeXt-Tiny on a real photo against torchvision (tools/fixtures/convnext.py):
// the checkpoint's 28M name-hashed weights are regenerated here (too big to
// commit), written in torchvision and in timm naming, loaded through the
// naming detection, and run on tests/data/astronaut.png through the
// authors' frame preprocessing.
#include <catch2/catch.hpp>

#include <filesystem>

#include "stpain/data/image.hpp"
#include "stpain/models/convnext_weights.hpp"
#include "support/fixtures.hpp"
#include "support/hash_weights.hpp"

using namespace stpain;
using namespace stpain::testing;

TEST_CASE("ConvNeXt-Tiny from torchvision and timm checkpoints matches torchvision on a real photo") {
  const safetensors::File expected(fixture_path("convnext.safetensors"));
  const json::Value names = json::parse(expected.metadata().at("tiny_tensors"));
  std::vector<safetensors::Entry> torchvision, timm;
  for (const json::Value& row : names.as_array()) {
    const std::string tv_name = row.as_array()[0].as_string(), timm_name = row.as_array()[1].as_string();
    std::vector<int64_t> dims;
    for (const json::Value& d : row.as_array()[2].as_array()) dims.push_back(static_cast<int64_t>(d.as_number()));
    const Tensor<float> values = hash_init(tv_name, Shape(dims));
    torchvision.push_back(safetensors::entry(tv_name, values));
    timm.push_back(safetensors::entry(timm_name, timm_name.ends_with(".gamma") ? values.reshape({-1}) : values));
  }
  const auto dir = std::filesystem::temp_directory_path() / ("stpain_tiny_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string tv_path = (dir / "tv.safetensors").string(), timm_path = (dir / "timm.safetensors").string();
  safetensors::save(tv_path, std::move(torchvision));
  safetensors::save(timm_path, std::move(timm));

  const Tensor<float> photo = load_frames({"tests/data/astronaut.png"});
  REQUIRE(photo.shape() == Shape{1, 3, 224, 224});
  for (const auto& path : {tv_path, timm_path}) {
    INFO(path);
    const safetensors::File ckpt(path);
    const ConvNeXtConfig config = infer_convnext_config(ckpt);
    CHECK(config.name == "tiny");
    ConvNeXt<cpu> net(config);
    net.eval();
    CHECK(load_convnext_weights(net, ckpt).ok());
    expect_close(net.forward(photo), expected.load("tiny.logits"), "logits", 1e-4);
    expect_close(net.forward_features(photo), expected.load("tiny.features"), "pooled features", 1e-4);
  }
  std::filesystem::remove_all(dir);
}
