#include "stpain/layers/conv2d.hpp"

#include "support/fixtures.hpp"
#include "support/gradcheck.hpp"

using namespace stpain;
using namespace stpain::testing;

static_assert(Layer<Conv2d<cpu>>);

namespace {
struct ConvCase {
  const char* name;
  Conv2d<cpu>::Options options;
};

// The layers of tools/fixtures/conv_norm.py.
const ConvCase kFixtureCases[] = {
    {"conv_plain", {.in_channels = 4, .out_channels = 6, .kernel = 3, .padding = 1}},
    {"conv_stem", {.in_channels = 3, .out_channels = 8, .kernel = 4, .stride = 4}},
    {"conv_down", {.in_channels = 4, .out_channels = 6, .kernel = 2, .stride = 2}},
    {"conv_grouped",
     {.in_channels = 4, .out_channels = 6, .kernel = {3, 2}, .stride = {2, 1}, .padding = {1, 0}, .groups = 2}},
    {"conv_depthwise", {.in_channels = 6, .out_channels = 6, .kernel = 7, .padding = 3, .groups = 6}},
    {"conv_depthwise_strided", {.in_channels = 4, .out_channels = 4, .kernel = 3, .stride = 2, .padding = 1, .groups = 4}},
    {"conv_pointwise", {.in_channels = 6, .out_channels = 5, .kernel = 1}},
    {"conv_nobias", {.in_channels = 4, .out_channels = 5, .kernel = 3, .stride = 2, .padding = 1, .bias = false}},
};
}  // namespace

TEST_CASE("Conv2d matches torch.nn.Conv2d forward and backward") {
  const safetensors::File f(fixture_path("conv_norm.safetensors"));
  for (const auto& c : kFixtureCases) {
    const std::string name = c.name;
    INFO("case " << name);
    Conv2d<cpu> layer(c.options);
    load_case_parameters(layer, f, name);
    const auto y = layer.forward(f.load(name + ".x"));
    expect_close(y, f.load(name + ".y"), name + ".y");
    const auto dx = layer.backward(f.load(name + ".dy"));
    expect_close(dx, f.load(name + ".dx"), name + ".dx");
    expect_case_gradients(layer, f, name);
  }
}

TEST_CASE("Conv2d picks the depthwise kernel only for one filter per channel") {
  CHECK(Conv2d<cpu>(8, 8, 7, 1, 3, 8).is_depthwise());
  CHECK_FALSE(Conv2d<cpu>(8, 16, 3, 1, 1, 8).is_depthwise());  // channel multiplier 2: grouped GEMM
  CHECK_FALSE(Conv2d<cpu>(8, 8, 3, 1, 1, 2).is_depthwise());
}

TEST_CASE("Conv2d gradients match central differences") {
  using D = Conv2d<cpu, double>;
  SECTION("plain 3x3, padding 1") {
    D layer(3, 4, 3, 1, 1);
    check_gradients(layer, random_tensor({2, 3, 5, 6}, 1));
  }
  SECTION("strided, asymmetric kernel and padding") {
    D layer(D::Options{.in_channels = 2, .out_channels = 3, .kernel = {3, 2}, .stride = {2, 3}, .padding = {1, 2}});
    check_gradients(layer, random_tensor({2, 2, 7, 8}, 2));
  }
  SECTION("patchify 4x4 stride 4 and 2x2 stride 2") {
    D stem(3, 4, 4, 4);
    check_gradients(stem, random_tensor({2, 3, 8, 12}, 3));
    D down(2, 3, 2, 2);
    check_gradients(down, random_tensor({1, 2, 6, 5}, 4));
  }
  SECTION("grouped, without bias") {
    D layer(D::Options{.in_channels = 4, .out_channels = 6, .kernel = 3, .padding = 1, .groups = 2, .bias = false});
    check_gradients(layer, random_tensor({2, 4, 5, 5}, 5));
  }
  SECTION("grouped with a channel multiplier") {
    D layer(3, 6, 3, 2, 1, 3);
    check_gradients(layer, random_tensor({2, 3, 6, 5}, 6));
  }
  SECTION("depthwise 7x7 padding 3") {
    D layer(3, 3, 7, 1, 3, 3);
    REQUIRE(layer.is_depthwise());
    check_gradients(layer, random_tensor({2, 3, 9, 10}, 7));
  }
  SECTION("depthwise strided, asymmetric, without bias") {
    D layer(D::Options{.in_channels = 2,
                       .out_channels = 2,
                       .kernel = {3, 5},
                       .stride = {2, 3},
                       .padding = {1, 2},
                       .groups = 2,
                       .bias = false});
    REQUIRE(layer.is_depthwise());
    check_gradients(layer, random_tensor({2, 2, 7, 11}, 8));
  }
  SECTION("depthwise with padding as large as the kernel") {
    D layer(3, 3, 2, 1, 2, 3);
    REQUIRE(layer.is_depthwise());
    check_gradients(layer, random_tensor({2, 3, 4, 5}, 10));
  }
  SECTION("depthwise wider than a vector block") {
    D layer(2, 2, {3, 5}, 1, {1, 2}, 2);
    check_gradients(layer, random_tensor({1, 2, 3, 40}, 11));
  }
  SECTION("pointwise 1x1") {
    D layer(4, 3, 1);
    check_gradients(layer, random_tensor({2, 4, 3, 3}, 9));
  }
}

TEST_CASE("The direct depthwise kernels agree with im2col + GEMM on every tile shape") {
  // Widths and heights that fill the wide, middle and narrow register tiles
  // of the direct kernel, with partial tiles, and the strided form.
  struct Case {
    Shape input;
    Size2d kernel, stride, padding;
  };
  const Case cases[] = {
      {{1, 3, 11, 70}, 7, 1, 3}, {{3, 2, 8, 37}, 7, 1, 3},  {{2, 3, 9, 20}, 7, 1, 3},
      {{2, 2, 13, 7}, 7, 1, 3},  {{2, 3, 10, 33}, 3, 2, 1}, {{2, 2, 6, 9}, {3, 5}, {1, 2}, {2, 4}},
  };
  for (const auto& c : cases) {
    const int64_t channels = c.input[1];
    Conv2d<cpu> layer(Conv2d<cpu>::Options{.in_channels = channels,
                                           .out_channels = channels,
                                           .kernel = c.kernel,
                                           .stride = c.stride,
                                           .padding = c.padding,
                                           .groups = channels});
    REQUIRE(layer.is_depthwise());
    Generator gen(7);
    auto random = [&](const Shape& s) {
      Tensor<float> t = Tensor<float>::empty(s);
      for (auto& v : t) v = static_cast<float>(gen.normal());
      return t;
    };
    const auto x = random(c.input);
    const auto y = layer.forward(x);
    INFO("input " << c.input.str() << " output " << y.shape().str());
    Conv2dGeometry g{c.input[0], channels, c.input[2], c.input[3], channels, y.size(2), y.size(3),
                     c.kernel.h,  c.kernel.w, c.stride.h, c.stride.w, c.padding.h, c.padding.w, channels};
    Tensor<float> y_gemm = Tensor<float>::empty(y.shape());
    backend::conv2d_forward(cpu{}, g, x.data(), layer.weight.value.data(), layer.bias.value.data(), y_gemm.data());
    expect_close(y, y_gemm, "forward");

    const auto dy = random(y.shape());
    zero_grad(layer);
    const auto dx = layer.backward(dy);
    Tensor<float> dx_gemm = Tensor<float>::empty(x.shape());
    Tensor<float> dw_gemm = Tensor<float>::zeros(layer.weight.value.shape());
    Tensor<float> db_gemm = Tensor<float>::zeros({channels});
    backend::conv2d_backward(cpu{}, g, x.data(), layer.weight.value.data(), dy.data(), dx_gemm.data(),
                             dw_gemm.data(), db_gemm.data());
    expect_close(dx, dx_gemm, "dx");
    expect_close(layer.weight.grad, dw_gemm, "dweight");
    expect_close(layer.bias.grad, db_gemm, "dbias");
  }
}

TEST_CASE("Conv2d backward accumulates parameter gradients") {
  // Batches of several images exercise the per-thread partial sums.
  for (const auto& options : {Conv2d<cpu, double>::Options{.in_channels = 4, .out_channels = 6, .kernel = 3, .padding = 1, .groups = 2},
                              Conv2d<cpu, double>::Options{.in_channels = 3, .out_channels = 3, .kernel = 7, .padding = 3, .groups = 3}}) {
    Conv2d<cpu, double> layer(options);
    const auto x = random_tensor({5, options.in_channels, 6, 7}, 31);
    const auto dy = random_tensor(layer.forward(x).shape(), 32);
    layer.backward(dy);
    const auto dw_once = layer.weight.grad.clone(), db_once = layer.bias.grad.clone();
    layer.backward(dy);
    for (int64_t i = 0; i < dw_once.numel(); ++i) CHECK(layer.weight.grad[i] == Approx(2 * dw_once[i]));
    for (int64_t i = 0; i < db_once.numel(); ++i) CHECK(layer.bias.grad[i] == Approx(2 * db_once[i]));
  }
}

TEST_CASE("Conv2d gives the same results on one thread as on two") {
  // Inputs large enough that every kernel splits its work (and its gradient
  // sums) between threads.
  struct Case {
    Conv2d<cpu>::Options options;
    Shape input;
  };
  const Case cases[] = {
      {{.in_channels = 4, .out_channels = 8, .kernel = 3, .padding = 1, .groups = 2}, {4, 4, 16, 20}},
      {{.in_channels = 8, .out_channels = 8, .kernel = 7, .padding = 3, .groups = 8}, {4, 8, 16, 40}},
      {{.in_channels = 8, .out_channels = 8, .kernel = 3, .stride = 2, .padding = 1, .groups = 8}, {4, 8, 30, 30}},
  };
  for (const auto& c : cases) {
    Conv2d<cpu> layer(c.options);
    Generator gen(5);
    Tensor<float> x = Tensor<float>::empty(c.input);
    for (auto& v : x) v = static_cast<float>(gen.normal());
    auto run = [&](int threads) {
      set_num_threads(threads);
      zero_grad(layer);
      const auto y = layer.forward(x);
      Tensor<float> dy = Tensor<float>::empty(y.shape());
      for (int64_t i = 0; i < dy.numel(); ++i) dy[i] = static_cast<float>(std::sin(0.1 * static_cast<double>(i)));
      const auto dx = layer.backward(dy);
      return std::tuple{y, dx, layer.weight.grad.clone(), layer.bias.grad.clone()};
    };
    const int before = num_threads();
    const auto [y1, dx1, dw1, db1] = run(1);
    const auto [y2, dx2, dw2, db2] = run(2);
    set_num_threads(before);
    INFO(layer.describe() << " on " << c.input.str());
    expect_close(y2, y1, "y");
    expect_close(dx2, dx1, "dx");
    expect_close(dw2, dw1, "dweight");
    expect_close(db2, db1, "dbias");
  }
}

TEST_CASE("Conv2d computes output sizes as PyTorch does") {
  Conv2d<cpu> layer(2, 3, 3, 2, 1);
  CHECK(layer.forward(Tensor<float>({1, 2, 7, 8})).shape() == Shape{1, 3, 4, 4});
  Conv2d<cpu> stem(3, 96, 4, 4);
  CHECK(stem.forward(Tensor<float>({2, 3, 18, 17})).shape() == Shape{2, 96, 4, 4});
}

TEST_CASE("Conv2d names its parameters as PyTorch does") {
  Conv2d<cpu> layer(3, 8, 3);
  CHECK(parameter_names(layer, "stem.0.") == std::vector<std::string>{"stem.0.weight", "stem.0.bias"});
  CHECK(layer.weight.value.shape() == Shape{8, 3, 3, 3});
  Conv2d<cpu> dw(Conv2d<cpu>::Options{.in_channels = 4, .out_channels = 4, .kernel = 7, .padding = 3, .groups = 4, .bias = false});
  CHECK(parameter_names(dw) == std::vector<std::string>{"weight"});
  CHECK(dw.weight.value.shape() == Shape{4, 1, 7, 7});
}

TEST_CASE("Conv2d initialises weights and bias uniformly within 1/sqrt(fan_in)") {
  Conv2d<cpu> layer(4, 16, 3, 1, 1, 2);  // fan_in = 4/2 * 9 = 18
  const double bound = 1.0 / std::sqrt(18.0);
  float lo = 1, hi = -1;
  for (float v : layer.weight.value) {
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  CHECK(lo >= -bound);
  CHECK(hi <= bound);
  CHECK(hi - lo > bound);  // spread over the range, not constant
  for (float v : layer.bias.value) CHECK(std::fabs(v) <= bound);
}

TEST_CASE("Conv2d rejects bad inputs and configurations with the layer and the shape") {
  Conv2d<cpu> layer(3, 8, 4, 4);
  CHECK_THROWS_AS(layer.forward(Tensor<float>({2, 5, 8, 8})), ShapeError);
  CHECK_THROWS_WITH(layer.forward(Tensor<float>({2, 5, 8, 8})),
                    Catch::Contains("Conv2d(3, 8, kernel_size=(4, 4)") && Catch::Contains("[2, 5, 8, 8]") &&
                        Catch::Contains("5 channels, expected 3"));
  CHECK_THROWS_WITH(layer.forward(Tensor<float>({2, 3, 3, 8})),
                    Catch::Contains("[2, 3, 3, 8]") && Catch::Contains("smaller than the kernel 4x4"));
  CHECK_THROWS_WITH(layer.forward(Tensor<float>({3, 8, 8})), Catch::Contains("[3, 8, 8]") && Catch::Contains("NCHW"));
  CHECK_THROWS_AS(Conv2d<cpu>(6, 4, 3, 1, 1, 4), ShapeError);  // 6 channels in 4 groups
  CHECK_THROWS_AS(Conv2d<cpu>(4, 4, 3, 0), ShapeError);        // stride 0
  // Padding lets an input smaller than the kernel through, as in PyTorch.
  Conv2d<cpu> padded(1, 1, 3, 1, 1);
  CHECK(padded.forward(Tensor<float>({1, 1, 1, 1})).shape() == Shape{1, 1, 1, 1});
}

TEST_CASE("Conv2d backward needs a forward and a dy of the output's shape") {
  Conv2d<cpu> layer(2, 3, 3);
  CHECK_THROWS_AS(layer.backward(Tensor<float>({1, 3, 2, 2})), Error);
  layer.forward(Tensor<float>({1, 2, 4, 4}));
  CHECK_THROWS_WITH(layer.backward(Tensor<float>({1, 3, 4, 4})),
                    Catch::Contains("[1, 3, 2, 2]") && Catch::Contains("[1, 3, 4, 4]"));
}
