#include "stpain/layers/batch_norm.hpp"
#include "stpain/layers/layer_norm.hpp"

#include "support/fixtures.hpp"
#include "support/gradcheck.hpp"

using namespace stpain;
using namespace stpain::testing;

static_assert(Layer<LayerNorm<cpu>>);
static_assert(Layer<LayerNorm2d<cpu>>);
static_assert(Layer<BatchNorm1d<cpu>>);
static_assert(Layer<BatchNorm2d<cpu>>);

// ---------------------------------------------------------------- LayerNorm

TEST_CASE("LayerNorm and LayerNorm2d match PyTorch forward and backward") {
  const safetensors::File f(fixture_path("conv_norm.safetensors"));
  LayerNorm<cpu> ln(10, 1e-6);
  expect_matches_case(ln, f, "layer_norm");
  LayerNorm2d<cpu> ln2d(LayerNorm2d<cpu>::Options{.normalized_shape = 6, .eps = 1e-6});
  expect_matches_case(ln2d, f, "layer_norm2d");
}

TEST_CASE("LayerNorm gradients match central differences") {
  SECTION("last dimension") {
    LayerNorm<cpu, double> layer(7);
    layer.weight.value.copy_from(random_tensor({7}, 20, 0.5));
    layer.bias.value.copy_from(random_tensor({7}, 21));
    check_gradients(layer, random_tensor({3, 2, 7}, 22, 2.0));
  }
  SECTION("channels first") {
    LayerNorm2d<cpu, double> layer(5, 1e-6);
    layer.weight.value.copy_from(random_tensor({5}, 23, 0.5));
    layer.bias.value.copy_from(random_tensor({5}, 24));
    check_gradients(layer, random_tensor({2, 5, 3, 4}, 25, 2.0));
  }
  SECTION("channels first, more positions than one block of the kernel") {
    LayerNorm2d<cpu, double> layer(3);
    check_gradients(layer, random_tensor({2, 3, 17, 19}, 26));
  }
}

TEST_CASE("LayerNorm over many rows sums its parameter gradients across threads") {
  LayerNorm<cpu, double> layer(4);
  layer.weight.value.copy_from(random_tensor({4}, 27, 0.5));
  check_gradients(layer, random_tensor({5000, 4}, 28));
}

TEST_CASE("LayerNorm2d equals LayerNorm over channels-last data") {
  const int64_t n = 2, c = 16, h = 17, w = 19;  // 323 positions: a block of 256 and a tail
  Generator g(30);
  Tensor<float> x = Tensor<float>::empty({n, c, h, w});
  for (auto& v : x) v = static_cast<float>(g.normal(3.0, 2.0));
  Tensor<float> x_last = Tensor<float>::empty({n, h, w, c});
  for (int64_t i = 0; i < n; ++i)
    for (int64_t ch = 0; ch < c; ++ch)
      for (int64_t p = 0; p < h * w; ++p) x_last[(i * h * w + p) * c + ch] = x[(i * c + ch) * h * w + p];
  LayerNorm2d<cpu> first(c, 1e-6);
  LayerNorm<cpu> last(c, 1e-6);
  for (int64_t ch = 0; ch < c; ++ch) {
    first.weight.value[ch] = last.weight.value[ch] = static_cast<float>(g.normal());
    first.bias.value[ch] = last.bias.value[ch] = static_cast<float>(g.normal());
  }
  const auto y_first = first.forward(x);
  const auto y_last = last.forward(x_last);
  Tensor<float> y_back = Tensor<float>::empty({n, c, h, w});
  for (int64_t i = 0; i < n; ++i)
    for (int64_t ch = 0; ch < c; ++ch)
      for (int64_t p = 0; p < h * w; ++p) y_back[(i * c + ch) * h * w + p] = y_last[(i * h * w + p) * c + ch];
  expect_close(y_first, y_back, "LayerNorm2d vs LayerNorm");
}

TEST_CASE("LayerNorm is stable for a large mean") {
  // One-pass E[x^2] - E[x]^2 would lose every digit here.
  LayerNorm<cpu> layer(4);
  const auto y = layer.forward(Tensor<float>::from({1, 4}, {10000.f, 10001.f, 10002.f, 10003.f}));
  const float expected = 1.5f / std::sqrt(1.25f + 1e-5f);
  CHECK(y[0] == Approx(-expected).epsilon(1e-4));
  CHECK(y[3] == Approx(expected).epsilon(1e-4));
}

TEST_CASE("LayerNorm names, defaults and shape errors") {
  LayerNorm<cpu> ln(96);
  CHECK(parameter_names(ln, "norm.") == std::vector<std::string>{"norm.weight", "norm.bias"});
  CHECK(ln.options().eps == 1e-5);
  CHECK(ln.weight.value[5] == 1.f);
  CHECK(ln.bias.value[5] == 0.f);
  CHECK_THROWS_WITH(ln.forward(Tensor<float>({2, 95})), Catch::Contains("LayerNorm(96") && Catch::Contains("[2, 95]"));
  LayerNorm2d<cpu> ln2d(96, 1e-6);
  CHECK(parameter_names(ln2d) == std::vector<std::string>{"weight", "bias"});
  CHECK_THROWS_WITH(ln2d.forward(Tensor<float>({2, 4, 4, 96})),
                    Catch::Contains("LayerNorm2d(96") && Catch::Contains("[2, 4, 4, 96]"));
  CHECK_THROWS_AS(ln2d.forward(Tensor<float>({2, 96, 4})), ShapeError);
  CHECK_THROWS_AS(ln2d.backward(Tensor<float>({2, 96, 4, 4})), Error);
}

TEST_CASE("Norm layers accumulate parameter gradients over backward calls") {
  auto twice = [](auto& layer, const Tensor<double>& x) {
    const auto dy = random_tensor(layer.forward(x).shape(), 90);
    layer.backward(dy);
    const auto dw = layer.weight.grad.clone(), db = layer.bias.grad.clone();
    layer.backward(dy);
    for (int64_t i = 0; i < dw.numel(); ++i) CHECK(layer.weight.grad[i] == Approx(2 * dw[i]));
    for (int64_t i = 0; i < db.numel(); ++i) CHECK(layer.bias.grad[i] == Approx(2 * db[i]));
  };
  LayerNorm<cpu, double> ln(6);
  twice(ln, random_tensor({9000, 6}, 91));
  LayerNorm2d<cpu, double> ln2d(6);
  twice(ln2d, random_tensor({3, 6, 9, 10}, 92));
  BatchNorm2d<cpu, double> bn(6);
  twice(bn, random_tensor({3, 6, 4, 5}, 93));
}

TEST_CASE("Norm layers give the same results on one thread as on two") {
  // Inputs large enough that every kernel splits its work (and its gradient
  // sums) between threads.
  auto compare = [](auto& layer, const Shape& shape) {
    Generator gen(6);
    Tensor<float> x = Tensor<float>::empty(shape);
    for (auto& v : x) v = static_cast<float>(gen.normal(1.0, 2.0));
    Tensor<float> dy = Tensor<float>::empty(shape);
    for (auto& v : dy) v = static_cast<float>(gen.normal());
    auto run = [&](int threads) {
      set_num_threads(threads);
      zero_grad(layer);
      const auto y = layer.forward(x);
      const auto dx = layer.backward(dy);
      return std::tuple{y, dx, layer.weight.grad.clone(), layer.bias.grad.clone()};
    };
    const int before = num_threads();
    const auto [y1, dx1, dw1, db1] = run(1);
    const auto [y2, dx2, dw2, db2] = run(2);
    set_num_threads(before);
    INFO(layer.describe() << " on " << shape.str());
    expect_close(y2, y1, "y");
    expect_close(dx2, dx1, "dx");
    expect_close(dw2, dw1, "dweight");
    expect_close(db2, db1, "dbias");
  };
  LayerNorm<cpu> ln(8);
  compare(ln, {4, 1024, 8});
  LayerNorm2d<cpu> ln2d(8);
  compare(ln2d, {4, 8, 32, 33});
  BatchNorm2d<cpu> bn(8);
  compare(bn, {4, 8, 32, 32});
}

// ---------------------------------------------------------------- BatchNorm

TEST_CASE("BatchNorm matches PyTorch in training mode, running statistics included") {
  const safetensors::File f(fixture_path("conv_norm.safetensors"));
  auto check = [&](auto& layer, const std::string& name) {
    expect_matches_case(layer, f, name);
    expect_close(layer.running_mean.value, f.load(name + ".after.running_mean"), name + " running_mean");
    expect_close(layer.running_var.value, f.load(name + ".after.running_var"), name + " running_var");
    CHECK(layer.num_batches_tracked.value[0] == 1.f);
  };
  BatchNorm1d<cpu> bn1d(5);
  check(bn1d, "bn1d");
  BatchNorm1d<cpu> bn1d_seq(4);
  check(bn1d_seq, "bn1d_seq");
  BatchNorm2d<cpu> bn2d(3);
  check(bn2d, "bn2d");
}

TEST_CASE("BatchNorm matches PyTorch in eval mode and leaves the running statistics alone") {
  const safetensors::File f(fixture_path("conv_norm.safetensors"));
  BatchNorm2d<cpu> bn(3);
  bn.eval();
  expect_matches_case(bn, f, "bn2d_eval");
  expect_close(bn.running_mean.value, f.load("bn2d_eval.param.running_mean"), "running_mean");
  expect_close(bn.running_var.value, f.load("bn2d_eval.param.running_var"), "running_var");
  CHECK(bn.num_batches_tracked.value[0] == 0.f);
}

TEST_CASE("BatchNorm gradients match central differences in both modes") {
  auto randomize = [](auto& layer, uint64_t seed) {
    const int64_t c = layer.options().num_features;
    layer.weight.value.copy_from(random_tensor({c}, seed, 0.5));
    layer.bias.value.copy_from(random_tensor({c}, seed + 1));
    layer.running_mean.value.copy_from(random_tensor({c}, seed + 2));
    for (int64_t i = 0; i < c; ++i) layer.running_var.value[i] = 0.5 + 0.25 * static_cast<double>(i);
  };
  SECTION("BatchNorm2d, training") {
    BatchNorm2d<cpu, double> layer(3);
    randomize(layer, 40);
    check_gradients(layer, random_tensor({4, 3, 3, 2}, 43, 2.0));
  }
  SECTION("BatchNorm2d, eval") {
    BatchNorm2d<cpu, double> layer(3);
    randomize(layer, 50);
    layer.eval();
    check_gradients(layer, random_tensor({2, 3, 3, 4}, 53, 2.0));
  }
  SECTION("BatchNorm1d on [N, C] and [N, C, L], training") {
    BatchNorm1d<cpu, double> layer(4);
    randomize(layer, 60);
    check_gradients(layer, random_tensor({6, 4}, 63));
    check_gradients(layer, random_tensor({3, 4, 5}, 64));
  }
  SECTION("BatchNorm1d, eval") {
    BatchNorm1d<cpu, double> layer(4);
    randomize(layer, 70);
    layer.eval();
    check_gradients(layer, random_tensor({5, 4}, 73));
  }
  SECTION("BatchNorm2d without affine parameters") {
    BatchNorm2d<cpu, double> layer(BatchNorm2d<cpu, double>::Options{.num_features = 2, .affine = false});
    check_gradients(layer, random_tensor({3, 2, 2, 3}, 80));
  }
}

TEST_CASE("BatchNorm updates running statistics with momentum and the unbiased variance") {
  BatchNorm1d<cpu, double> bn(BatchNorm1d<cpu, double>::Options{.num_features = 2, .momentum = 0.25});
  // Channel 0: {1, 2, 3, 6}: mean 3, biased var 3.5, unbiased 14/3. Channel 1: constant 5.
  const auto x = Tensor<double>::from({4, 2}, {1, 5, 2, 5, 3, 5, 6, 5});
  const auto y = bn.forward(x);
  CHECK(bn.running_mean.value[0] == Approx(0.75 * 0 + 0.25 * 3));
  CHECK(bn.running_mean.value[1] == Approx(0.25 * 5));
  CHECK(bn.running_var.value[0] == Approx(0.75 * 1 + 0.25 * 14.0 / 3.0));
  CHECK(bn.running_var.value[1] == Approx(0.75));
  CHECK(y[0] == Approx((1 - 3) / std::sqrt(3.5 + 1e-5)));
  CHECK(y[1] == Approx(0.0));
  CHECK(bn.num_batches_tracked.value[0] == 1);
  bn.forward(x);
  CHECK(bn.num_batches_tracked.value[0] == 2);
  CHECK(bn.running_mean.value[0] == Approx(0.75 * 0.75 + 0.25 * 3));
  // Eval uses the running statistics and counts nothing.
  bn.eval();
  const auto y_eval = bn.forward(x);
  CHECK(bn.num_batches_tracked.value[0] == 2);
  CHECK(y_eval[0] == Approx((1 - bn.running_mean.value[0]) / std::sqrt(bn.running_var.value[0] + 1e-5)));
}

TEST_CASE("BatchNorm names its parameters and buffers as PyTorch's state_dict") {
  BatchNorm2d<cpu> bn(8);
  CHECK(parameter_names(bn, "bn1.") == std::vector<std::string>{"bn1.weight", "bn1.bias", "bn1.running_mean",
                                                                 "bn1.running_var", "bn1.num_batches_tracked"});
  std::vector<std::string> trainable;
  bn.visit_parameters([&](const std::string& n, auto& p) {
    if (p.trainable) trainable.push_back(n);
  });
  CHECK(trainable == std::vector<std::string>{"weight", "bias"});
  CHECK(parameter_count(bn) == 16);
  CHECK(bn.num_batches_tracked.value.shape() == Shape{});
  CHECK(bn.num_batches_tracked.value.numel() == 1);
  CHECK(bn.running_var.value[3] == 1.f);
  CHECK(bn.running_mean.value[3] == 0.f);
  CHECK(bn.weight.value[3] == 1.f);
  BatchNorm1d<cpu> plain(BatchNorm1d<cpu>::Options{.num_features = 4, .affine = false});
  CHECK(parameter_names(plain) == std::vector<std::string>{"running_mean", "running_var", "num_batches_tracked"});
}

TEST_CASE("BatchNorm rejects wrong shapes and single-value batches in training") {
  BatchNorm2d<cpu> bn2d(3);
  CHECK_THROWS_WITH(bn2d.forward(Tensor<float>({2, 4, 5, 5})),
                    Catch::Contains("BatchNorm2d(3") && Catch::Contains("[2, 4, 5, 5]"));
  CHECK_THROWS_AS(bn2d.forward(Tensor<float>({2, 3, 5})), ShapeError);
  BatchNorm1d<cpu> bn1d(3);
  CHECK_THROWS_WITH(bn1d.forward(Tensor<float>({2, 3, 4, 4})),
                    Catch::Contains("BatchNorm1d(3") && Catch::Contains("[2, 3, 4, 4]"));
  CHECK_THROWS_WITH(bn1d.forward(Tensor<float>({1, 3})), Catch::Contains("[1, 3]") && Catch::Contains("more than one"));
  bn1d.eval();
  CHECK(bn1d.forward(Tensor<float>({1, 3})).shape() == Shape{1, 3});  // fine with running statistics
}
