#include "stpain/layers/linear.hpp"

#include "support/fixtures.hpp"
#include "support/gradcheck.hpp"

using namespace stpain;
using namespace stpain::testing;

TEST_CASE("Linear matches torch.nn.Linear forward and backward") {
  const safetensors::File f(fixture_path("linear.safetensors"));
  for (auto [name, in, out, bias] : {std::tuple{"linear", 7, 5, true}, std::tuple{"linear_nobias", 6, 3, false}}) {
    Linear<cpu> layer(in, out, bias);
    load_case_parameters(layer, f, name);
    const auto y = layer.forward(f.load(std::string(name) + ".x"));
    expect_close(y, f.load(std::string(name) + ".y"), std::string(name) + ".y");
    const auto dx = layer.backward(f.load(std::string(name) + ".dy"));
    expect_close(dx, f.load(std::string(name) + ".dx"), std::string(name) + ".dx");
    expect_case_gradients(layer, f, name);
  }
}

TEST_CASE("Linear gradients match central differences") {
  Linear<cpu, double> layer(5, 4);
  check_gradients(layer, random_tensor({2, 3, 5}, 7));
  Linear<cpu, double> no_bias(3, 2, false);
  check_gradients(no_bias, random_tensor({4, 3}, 8));
}

TEST_CASE("Linear names its parameters as PyTorch does and rejects a wrong input width") {
  Linear<cpu> layer(4, 2);
  std::vector<std::string> names;
  layer.visit_parameters([&](const std::string& n, auto&) { names.push_back(n); }, "fc.");
  CHECK(names == std::vector<std::string>{"fc.weight", "fc.bias"});
  CHECK_THROWS_WITH(layer.forward(Tensor<float>({3, 5})), Catch::Contains("[3, 5]") && Catch::Contains("4"));
}
