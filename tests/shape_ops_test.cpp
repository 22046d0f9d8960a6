// Dropout, DropPath, LayerScale, pooling, Flatten, Reshape and Permute.
#include <algorithm>
#include <numeric>

#include "stpain/compose/residual.hpp"
#include "stpain/compose/sequential.hpp"
#include "stpain/layers/dropout.hpp"
#include "stpain/layers/layer_scale.hpp"
#include "stpain/layers/linear.hpp"
#include "stpain/layers/pooling.hpp"
#include "stpain/layers/reshape.hpp"
#include "support/fixtures.hpp"
#include "support/gradcheck.hpp"

using namespace stpain;
using namespace stpain::testing;

static_assert(Layer<Dropout<>>);
static_assert(Layer<DropPath<>>);
static_assert(Layer<LayerScale<>>);
static_assert(Layer<LayerScale2d<>>);
static_assert(Layer<GlobalAvgPool2d<>>);
static_assert(Layer<MeanPool<>>);
static_assert(Layer<Flatten<>>);
static_assert(Layer<Reshape<>>);
static_assert(Layer<Permute<cpu, double>>);
static_assert(Layer<Residual<Sequential<Linear<>, LayerScale<>, DropPath<>>>>);

namespace {

const safetensors::File& fixture() {
  static const safetensors::File f(fixture_path("activations.safetensors"));
  return f;
}

// x.permute(perm) by index arithmetic, the reference for the permute kernel.
Tensor<double> naive_permute(const Tensor<double>& x, const std::vector<int>& perm) {
  const int r = x.rank();
  std::vector<int64_t> out_dims(static_cast<size_t>(r)), in_stride(static_cast<size_t>(r), 1);
  for (int a = r - 2; a >= 0; --a) in_stride[static_cast<size_t>(a)] = in_stride[static_cast<size_t>(a) + 1] * x.size(a + 1);
  for (int i = 0; i < r; ++i) out_dims[static_cast<size_t>(i)] = x.size(perm[static_cast<size_t>(i)]);
  Tensor<double> y = Tensor<double>::empty(Shape(out_dims));
  std::vector<int64_t> idx(static_cast<size_t>(r), 0);
  for (int64_t o = 0; o < y.numel(); ++o) {
    int64_t src = 0;
    for (int i = 0; i < r; ++i) src += idx[static_cast<size_t>(i)] * in_stride[static_cast<size_t>(perm[static_cast<size_t>(i)])];
    y[o] = x[src];
    for (int i = r - 1; i >= 0 && ++idx[static_cast<size_t>(i)] == out_dims[static_cast<size_t>(i)]; --i) idx[static_cast<size_t>(i)] = 0;
  }
  return y;
}

Tensor<float> ones(const Shape& s) { return Tensor<float>::full(s, 1.0f); }

}  // namespace

// ---- PyTorch parity -----------------------------------------------------------

TEST_CASE("LayerScale matches timm's gamma and torchvision's layer_scale") {
  const auto& f = fixture();
  LayerScale<> timm(6);
  expect_matches_case(timm, f, "layer_scale");
  LayerScale2d<> torchvision(5);
  expect_matches_case(torchvision, f, "layer_scale2d");
  LayerScale2d<> timm2d({.channels = 5, .name = "gamma", .trailing_unit_dims = false});
  expect_matches_case(timm2d, f, "layer_scale2d_timm");
}

TEST_CASE("Pooling matches AdaptiveAvgPool2d(1) and x.mean(dim)") {
  const auto& f = fixture();
  GlobalAvgPool2d<> pool;
  expect_matches_case(pool, f, "global_avg_pool");
  GlobalAvgPool2d<> keep(true);
  expect_matches_case(keep, f, "global_avg_pool_keepdim");
  MeanPool<> time;  // dim 1: [N, T, F] -> [N, F]
  expect_matches_case(time, f, "mean_pool_time");
  MeanPool<> last(-1, true);
  expect_matches_case(last, f, "mean_pool_last_keepdim");
}

TEST_CASE("Flatten, Reshape and Permute match PyTorch") {
  const auto& f = fixture();
  Flatten<> flatten;
  expect_matches_case(flatten, f, "flatten");
  Flatten<> middle(1, 2);
  expect_matches_case(middle, f, "flatten_1_2");
  Reshape<> reshape({3, -1, 5});
  expect_matches_case(reshape, f, "reshape");
  Permute<> to_nhwc({0, 2, 3, 1});
  expect_matches_case(to_nhwc, f, "permute_nchw_to_nhwc");
  Permute<> to_nchw({0, 3, 1, 2});
  expect_matches_case(to_nchw, f, "permute_nhwc_to_nchw");
  Permute<> general({2, 0, -1, 1});
  expect_matches_case(general, f, "permute_2031");
}

TEST_CASE("Dropout and DropPath are the identity in eval mode, as in PyTorch") {
  const auto& f = fixture();
  Dropout<> dropout(0.3);
  dropout.eval();
  expect_matches_case(dropout, f, "dropout_eval");
  DropPath<> drop_path(0.3);
  drop_path.eval();
  expect_matches_case(drop_path, f, "drop_path_eval");
}

// ---- Gradient checks -----------------------------------------------------------

TEST_CASE("Shape layer gradients match central differences") {
  SECTION("LayerScale and LayerScale2d") {
    LayerScale<cpu, double> ls(5);
    ls.gamma.value.copy_from(random_tensor({5}, 21));
    check_gradients(ls, random_tensor({2, 3, 5}, 22));
    LayerScale2d<cpu, double> ls2d(3);
    ls2d.gamma.value.copy_from(random_tensor({3, 1, 1}, 23));
    check_gradients(ls2d, random_tensor({2, 3, 4, 5}, 24));
  }
  SECTION("pooling") {
    GlobalAvgPool2d<cpu, double> pool;
    check_gradients(pool, random_tensor({2, 3, 4, 5}, 25));
    MeanPool<cpu, double> mean(1);
    check_gradients(mean, random_tensor({2, 6, 4}, 26));
    MeanPool<cpu, double> first(0, true);
    check_gradients(first, random_tensor({3, 2, 4}, 27));
  }
  SECTION("Flatten, Reshape, Permute") {
    Flatten<cpu, double> flatten;
    check_gradients(flatten, random_tensor({2, 3, 4}, 28));
    Reshape<cpu, double> reshape({-1, 2});
    check_gradients(reshape, random_tensor({2, 3, 4}, 29));
    for (const auto& perm : {std::vector<int>{0, 2, 3, 1}, {0, 3, 1, 2}, {3, 1, 0, 2}}) {
      Permute<cpu, double> permute(perm);
      check_gradients(permute, random_tensor({2, 3, 4, 5}, 30));
    }
  }
  SECTION("Dropout and DropPath in training mode (the checker reseeds every forward)") {
    Dropout<cpu, double> dropout(0.3);
    check_gradients(dropout, random_tensor({4, 30}, 31));
    DropPath<cpu, double> drop_path(0.5);
    check_gradients(drop_path, random_tensor({8, 3, 4}, 32));
    drop_path.eval();
    check_gradients(drop_path, random_tensor({8, 3, 4}, 33));
  }
}

// ---- Stochastic layers by their properties ---------------------------------------

TEST_CASE("Dropout keeps a fraction 1 - p, scales it by 1/(1 - p) and reuses the mask in backward") {
  const double p = 0.3;
  const float kept_value = static_cast<float>(1.0 / (1.0 - p));
  Dropout<> dropout(p);
  const Shape shape{1000, 1000};
  manual_seed(42);
  const auto y = dropout.forward(ones(shape));
  int64_t kept = 0;
  bool only_two_values = true;
  for (float v : y) {
    kept += v != 0.0f;
    only_two_values &= v == 0.0f || v == kept_value;
  }
  CHECK(only_two_values);
  CHECK(static_cast<double>(kept) / static_cast<double>(y.numel()) == Approx(1.0 - p).margin(0.005));

  SECTION("backward multiplies by the same mask") {
    const auto dx = dropout.backward(ones(shape));
    CHECK(std::equal(dx.begin(), dx.end(), y.begin()));
  }
  SECTION("the same seed gives the same mask; the next forward a different one") {
    const auto next = dropout.forward(ones(shape));
    CHECK_FALSE(std::equal(next.begin(), next.end(), y.begin()));
    manual_seed(42);
    const auto again = dropout.forward(ones(shape));
    CHECK(std::equal(again.begin(), again.end(), y.begin()));
  }
  SECTION("the mask does not depend on the number of threads") {
    const int threads = num_threads();
    set_num_threads(1);
    manual_seed(42);
    const auto serial = dropout.forward(ones(shape));
    set_num_threads(threads);
    CHECK(std::equal(serial.begin(), serial.end(), y.begin()));
  }
  SECTION("eval mode and p = 0 are the identity; p = 1 drops everything") {
    dropout.eval();
    const auto x = ones({3, 4});
    CHECK(dropout.forward(x).shares_storage_with(x));
    Dropout<> none(0.0);
    CHECK(none.forward(x).shares_storage_with(x));
    Dropout<> all(1.0);
    const auto zeros = all.forward(x);
    CHECK(std::all_of(zeros.begin(), zeros.end(), [](float v) { return v == 0.0f; }));
  }
}

TEST_CASE("DropPath keeps or drops whole samples with probability 1 - p") {
  const double p = 0.25;
  DropPath<> drop_path(p);
  manual_seed(7);
  const Shape shape{4000, 3, 2};
  const auto y = drop_path.forward(ones(shape));
  const float kept_value = static_cast<float>(1.0 / (1.0 - p));
  int64_t kept = 0;
  bool whole_samples = true;
  for (int64_t n = 0; n < shape[0]; ++n) {
    const float first = y(n, 0, 0);
    whole_samples &= first == 0.0f || first == kept_value;
    for (int64_t i = 0; i < 6; ++i) whole_samples &= y[n * 6 + i] == first;
    kept += first != 0.0f;
  }
  CHECK(whole_samples);
  CHECK(static_cast<double>(kept) / static_cast<double>(shape[0]) == Approx(1.0 - p).margin(0.03));
  CHECK(drop_path.sample_scales().numel() == shape[0]);

  const auto dx = drop_path.backward(ones(shape));
  CHECK(std::equal(dx.begin(), dx.end(), y.begin()));

  manual_seed(7);
  const auto again = drop_path.forward(ones(shape));
  CHECK(std::equal(again.begin(), again.end(), y.begin()));

  DropPath<> unscaled(0.5, false);
  const auto u = unscaled.forward(ones({64, 5}));
  CHECK(std::all_of(u.begin(), u.end(), [](float v) { return v == 0.0f || v == 1.0f; }));

  drop_path.eval();
  const auto x = ones({3, 4});
  CHECK(drop_path.forward(x).shares_storage_with(x));
  CHECK(drop_path.backward(x).shares_storage_with(x));
}

// ---- Names, options, views and kernels ------------------------------------------

TEST_CASE("LayerScale parameters are named and shaped for timm and torchvision checkpoints") {
  LayerScale<> timm(8);
  CHECK(parameter_names(timm) == std::vector<std::string>{"gamma"});
  CHECK(timm.gamma.value.shape() == Shape{8});
  CHECK(timm.gamma.value[3] == 1e-6f);
  LayerScale2d<> torchvision(8);
  CHECK(parameter_names(torchvision) == std::vector<std::string>{"layer_scale"});
  CHECK(torchvision.gamma.value.shape() == Shape{8, 1, 1});
  LayerScale2d<> timm2d({.channels = 8, .init_value = 0.5, .name = "gamma", .trailing_unit_dims = false});
  CHECK(parameter_names(timm2d) == std::vector<std::string>{"gamma"});
  CHECK(timm2d.gamma.value.shape() == Shape{8});
  CHECK(timm2d.gamma.value[0] == 0.5f);
  LayerScale<> renamed({.dim = 4, .name = "ls1.gamma"});
  CHECK(parameter_names(renamed) == std::vector<std::string>{"ls1.gamma"});
}

TEST_CASE("Flatten and Reshape are views; Permute copies") {
  const auto x = Tensor<float>::from({2, 2, 3}, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11});
  Flatten<> flatten;
  const auto flat = flatten.forward(x);
  CHECK(flat.shape() == Shape{2, 6});
  CHECK(flat.shares_storage_with(x));
  Reshape<> reshape({3, 2});
  CHECK(reshape.forward(x).shape() == Shape{2, 3, 2});
  Reshape<> everything({-1});
  CHECK(everything.forward(x).shape() == Shape{2, 6});
  Permute<> permute({0, 2, 1});
  const auto t = permute.forward(x);
  CHECK(t.shape() == Shape{2, 3, 2});
  CHECK(t(0, 2, 1) == 5.0f);
  CHECK(t(1, 0, 1) == 9.0f);
}

TEST_CASE("The permute kernel matches index arithmetic for every permutation of 4-D tensors") {
  // Odd extents cross the 32-wide transpose tiles; extents of 1 and adjacent
  // runs exercise the merging of dimensions.
  for (const Shape& shape : {Shape{3, 37, 5, 41}, Shape{2, 1, 3, 1}, Shape{1, 4, 1, 6}, Shape{2, 3, 4, 5}}) {
    const auto x = random_tensor(shape, 40);
    std::vector<int> perm{0, 1, 2, 3};
    do {
      INFO("shape " << shape.str() << " perm " << perm[0] << perm[1] << perm[2] << perm[3]);
      Permute<cpu, double> permute(perm);
      const auto y = permute.forward(x);
      const auto expected = naive_permute(x, perm);
      REQUIRE(y.shape() == expected.shape());
      CHECK(std::equal(y.begin(), y.end(), expected.begin()));
      const auto back = permute.backward(y);
      CHECK(std::equal(back.begin(), back.end(), x.begin()));
    } while (std::next_permutation(perm.begin(), perm.end()));
  }
}

TEST_CASE("Shape layers reject bad shapes and options, naming them") {
  LayerScale<> ls(6);
  CHECK_THROWS_WITH(ls.forward(Tensor<float>({2, 5})), Catch::Contains("LayerScale(6)") && Catch::Contains("[2, 5]"));
  CHECK_THROWS_WITH(ls.backward(Tensor<float>({2, 6})), Catch::Contains("before forward"));
  ls.forward(Tensor<float>({2, 6}));
  CHECK_THROWS_WITH(ls.backward(Tensor<float>({3, 6})), Catch::Contains("[2, 6]") && Catch::Contains("[3, 6]"));

  LayerScale2d<> ls2d(4);
  CHECK_THROWS_WITH(ls2d.forward(Tensor<float>({2, 4, 3})),
                    Catch::Contains("LayerScale2d(4)") && Catch::Contains("[2, 4, 3]"));
  CHECK_THROWS_WITH(ls2d.forward(Tensor<float>({2, 3, 5, 5})), Catch::Contains("[2, 3, 5, 5]"));

  GlobalAvgPool2d<> pool;
  CHECK_THROWS_WITH(pool.forward(Tensor<float>({2, 3, 4})),
                    Catch::Contains("GlobalAvgPool2d") && Catch::Contains("[2, 3, 4]"));
  pool.forward(Tensor<float>({2, 3, 4, 4}));
  CHECK_THROWS_WITH(pool.backward(Tensor<float>({2, 4})), Catch::Contains("[2, 3]") && Catch::Contains("[2, 4]"));

  MeanPool<> mean(2);
  CHECK_THROWS_WITH(mean.forward(Tensor<float>({2, 3})), Catch::Contains("MeanPool(dim=2)") && Catch::Contains("[2, 3]"));

  Flatten<> flatten(2, 1);
  CHECK_THROWS_WITH(flatten.forward(Tensor<float>({2, 3, 4})), Catch::Contains("start_dim") && Catch::Contains("[2, 3, 4]"));
  Flatten<> too_far(1, 3);
  CHECK_THROWS_AS(too_far.forward(Tensor<float>({2, 3})), ShapeError);

  Reshape<> reshape({4, -1});
  CHECK_THROWS_WITH(reshape.forward(Tensor<float>({2, 6})),
                    Catch::Contains("Reshape([4, -1])") && Catch::Contains("[2, 6]"));
  Reshape<> fixed({5});
  CHECK_THROWS_WITH(fixed.forward(Tensor<float>({2, 6})), Catch::Contains("[2, 6]"));
  CHECK_THROWS_AS(Reshape<>({-1, -1}), ShapeError);

  CHECK_THROWS_WITH(Permute<>({0, 2, 2, 1}), Catch::Contains("Permute([0, 2, 2, 1])"));
  Permute<> permute({0, 2, 3, 1});
  CHECK_THROWS_WITH(permute.forward(Tensor<float>({2, 3, 4})),
                    Catch::Contains("Permute([0, 2, 3, 1])") && Catch::Contains("[2, 3, 4]"));
  permute.forward(Tensor<float>({2, 3, 4, 5}));
  CHECK_THROWS_WITH(permute.backward(Tensor<float>({2, 3, 4, 5})),
                    Catch::Contains("[2, 4, 5, 3]") && Catch::Contains("[2, 3, 4, 5]"));

  DropPath<> drop_path(0.1);
  CHECK_THROWS_WITH(drop_path.forward(Tensor<float>(Shape{})), Catch::Contains("DropPath") && Catch::Contains("[]"));
  CHECK_THROWS_AS(Dropout<>(1.5), Error);
  Dropout<> dropout(0.5);
  CHECK_THROWS_WITH(dropout.backward(Tensor<float>({2})), Catch::Contains("before forward"));
  dropout.forward(Tensor<float>({2, 3}));
  CHECK_THROWS_WITH(dropout.backward(Tensor<float>({3, 2})), Catch::Contains("[2, 3]") && Catch::Contains("[3, 2]"));
}
