// The README's usage example, compiled and run as written (plus assertions).
#include <catch2/catch.hpp>

#include <filesystem>

#include <stpain/stpain.hpp>

using namespace stpain;

TEST_CASE("the README example trains, saves and reloads an MLP") {
  manual_seed(3);
  Generator g(5);
  auto x = Tensor<float>::empty({32, 64});
  std::vector<int64_t> labels(32);
  for (int64_t i = 0; i < 32; ++i) {
    labels[static_cast<size_t>(i)] = i % 2;
    for (int64_t j = 0; j < 64; ++j) x(i, j) = static_cast<float>(g.normal() + (j < 8 ? 1.5 * (i % 2) : 0.0));
  }
  const std::string path = (std::filesystem::temp_directory_path() / "readme_mlp.safetensors").string();

  // --- as in README.md ---
  Sequential<Named<"fc1", Linear<cpu>>, GELU<cpu>, Named<"fc2", Linear<cpu>>> mlp(
      Linear<cpu>(64, 128), GELU<cpu>(), Linear<cpu>(128, 2));
  Adam opt(mlp, {.lr = 1e-3});
  double first = 0, last = 0;
  for (int step = 0; step < 50; ++step) {
    auto logits = mlp.forward(x);                           // Tensor<float> [N, 2]
    auto loss = softmax_cross_entropy(logits, labels);      // value + d loss / d logits
    opt.zero_grad();
    mlp.backward(loss.grad);
    opt.step();
    (step == 0 ? first : last) = loss.loss;
  }
  save_state_dict(mlp, path);                               // PyTorch names: fc1.weight, ...
  // --- end ---

  CHECK(last < 0.5 * first);
  decltype(mlp) copy(Linear<cpu>(64, 128), GELU<cpu>(), Linear<cpu>(128, 2));
  CHECK(load_state_dict(copy, path).loaded.size() == 4);
  CHECK(copy.forward(x).to_vector() == mlp.forward(x).to_vector());
}
