#include "stpain/layers/activations.hpp"

#include <cmath>
#include <limits>

#include "stpain/compose/sequential.hpp"
#include "stpain/layers/linear.hpp"
#include "support/fixtures.hpp"
#include "support/gradcheck.hpp"

using namespace stpain;
using namespace stpain::testing;

static_assert(Layer<GELU<>>);
static_assert(Layer<ReLU<>>);
static_assert(Layer<LeakyReLU<>>);
static_assert(Layer<Sigmoid<cpu, double>>);
static_assert(Layer<Tanh<>>);
static_assert(Layer<Softmax<>>);
static_assert(Layer<Sequential<Linear<>, GELU<>, Linear<>>>);

namespace {

const safetensors::File& fixture() {
  static const safetensors::File f(fixture_path("activations.safetensors"));
  return f;
}

// Worst error of a float function against its double reference, in units in
// the last place of the correctly rounded result, over a dense grid.
template <class F, class R>
double worst_ulp(F&& approx, R&& reference, float lo, float hi, int samples) {
  double worst = 0;
  for (int i = 0; i <= samples; ++i) {
    const float x = lo + (hi - lo) * static_cast<float>(i) / static_cast<float>(samples);
    const double ref = reference(static_cast<double>(x));
    const float rounded = static_cast<float>(ref);
    const double ulp = std::nextafter(std::fabs(rounded), INFINITY) - std::fabs(rounded);
    if (!(ulp > 0)) continue;  // beyond float's range
    worst = std::max(worst, std::fabs(static_cast<double>(approx(x)) - ref) / ulp);
  }
  return worst;
}

}  // namespace

TEST_CASE("Elementwise activations match PyTorch forward and backward") {
  const auto& f = fixture();
  SECTION("GELU, exact erf form (torch.nn.GELU())") {
    GELU<> gelu;
    CHECK(gelu.approximate() == GeluApproximation::none);
    expect_matches_case(gelu, f, "gelu");
  }
  SECTION("GELU, tanh approximation") {
    GELU<> gelu(GeluApproximation::tanh);
    expect_matches_case(gelu, f, "gelu_tanh");
  }
  SECTION("ReLU") {
    ReLU<> relu;
    expect_matches_case(relu, f, "relu");
  }
  SECTION("LeakyReLU with the default slope 0.01 and with 0.2") {
    LeakyReLU<> leaky;
    CHECK(leaky.negative_slope() == 0.01);
    expect_matches_case(leaky, f, "leaky_relu");
    LeakyReLU<> steeper(0.2);
    expect_matches_case(steeper, f, "leaky_relu_0.2");
  }
  SECTION("Sigmoid") {
    Sigmoid<> sigmoid;
    expect_matches_case(sigmoid, f, "sigmoid");
  }
  SECTION("Tanh") {
    Tanh<> tanh;
    expect_matches_case(tanh, f, "tanh");
  }
}

TEST_CASE("Softmax matches PyTorch over the last dimension and over dim 1") {
  const auto& f = fixture();
  Softmax<> last;
  CHECK(last.options().dim == -1);
  expect_matches_case(last, f, "softmax_last");
  Softmax<> channels(1);
  expect_matches_case(channels, f, "softmax_dim1");
  Softmax<> wide(1);  // 150 columns behind dim 1: two column tiles
  expect_matches_case(wide, f, "softmax_dim1_wide");
}

TEST_CASE("Activation gradients match central differences") {
  const auto x = random_tensor({3, 4, 5}, 11, 2.0);
  SECTION("GELU") {
    GELU<cpu, double> exact;
    check_gradients(exact, x);
    GELU<cpu, double> approx(GeluApproximation::tanh);
    check_gradients(approx, x);
  }
  SECTION("ReLU and LeakyReLU") {
    ReLU<cpu, double> relu;
    check_gradients(relu, x);
    LeakyReLU<cpu, double> leaky(0.2);
    check_gradients(leaky, x);
  }
  SECTION("Sigmoid and Tanh") {
    Sigmoid<cpu, double> sigmoid;
    check_gradients(sigmoid, x);
    Tanh<cpu, double> tanh;
    check_gradients(tanh, x);
  }
  SECTION("Softmax over each dimension") {
    for (int dim : {-1, 0, 1, 2}) {
      INFO("dim " << dim);
      Softmax<cpu, double> softmax(dim);
      check_gradients(softmax, x);
    }
    Softmax<cpu, double> wide(1);
    check_gradients(wide, random_tensor({2, 3, 140}, 12, 2.0));
  }
}

TEST_CASE("The vectorised float exp, erf and tanh are accurate to about one ulp") {
  namespace vm = backend::vmath;
  const int n = 2'000'000;
  CHECK(worst_ulp([](float x) { return vm::exp(x); }, [](double x) { return std::exp(x); }, -87.f, 88.f, n) < 1.5);
  CHECK(worst_ulp([](float x) { return vm::erf(x); }, [](double x) { return std::erf(x); }, -6.f, 6.f, n) < 1.5);
  CHECK(worst_ulp([](float x) { return vm::tanh(x); }, [](double x) { return std::tanh(x); }, -12.f, 12.f, n) < 1.5);
  CHECK(vm::exp(-100.f) == 0.f);
  CHECK(vm::exp(100.f) > 1e38f);
  CHECK(vm::erf(1e-30f) == Approx(1.1283791e-30f));
  CHECK(vm::erf(10.f) == 1.f);
  CHECK(vm::erf(-std::numeric_limits<float>::infinity()) == -1.f);
  CHECK(vm::tanh(-20.f) == -1.f);
}

TEST_CASE("Softmax is stable for large inputs and its rows sum to one") {
  Softmax<> softmax;
  const auto x = Tensor<float>::from({2, 3}, {1000.f, 1001.f, 1002.f, -1000.f, -1000.f, -1000.f});
  const auto y = softmax.forward(x);
  for (int64_t r = 0; r < 2; ++r) {
    float sum = 0;
    for (int64_t c = 0; c < 3; ++c) {
      CHECK(std::isfinite(y(r, c)));
      sum += y(r, c);
    }
    CHECK(sum == Approx(1.0f).epsilon(1e-6));
  }
  CHECK(y(0, 2) == Approx(0.66524096f).epsilon(1e-6));
  CHECK(y(1, 0) == Approx(1.0f / 3).epsilon(1e-6));
}

TEST_CASE("Large elementwise inputs take the threaded path and agree with a scalar loop") {
  const int64_t n = (int64_t{1} << 17) + 3;  // several chunks and a remainder
  Tensor<float> x = Tensor<float>::empty({n});
  Generator g(5);
  for (auto& v : x) v = static_cast<float>(g.normal(0.0, 3.0));
  GELU<> gelu;
  const auto y = gelu.forward(x);
  const auto dx = gelu.backward(Tensor<float>::full({n}, 1.0f));
  double worst = 0, worst_grad = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double v = x[i], cdf = 0.5 * (1 + std::erf(v / std::sqrt(2.0)));
    worst = std::max(worst, std::fabs(y[i] - v * cdf));
    worst_grad = std::max(worst_grad, std::fabs(dx[i] - (cdf + v * std::exp(-0.5 * v * v) / std::sqrt(2 * M_PI))));
  }
  CHECK(worst < 1e-5);
  CHECK(worst_grad < 1e-6);
}

TEST_CASE("Activations reject bad dimensions and shapes, naming them") {
  Softmax<> softmax(3);
  CHECK_THROWS_WITH(softmax.forward(Tensor<float>({2, 5})),
                    Catch::Contains("Softmax(dim=3)") && Catch::Contains("[2, 5]"));
  Softmax<> fresh;
  CHECK_THROWS_WITH(fresh.backward(Tensor<float>({2, 5})), Catch::Contains("before forward"));
  fresh.forward(Tensor<float>({2, 5}));
  CHECK_THROWS_AS(fresh.backward(Tensor<float>({5, 2})), ShapeError);
  CHECK_THROWS_WITH(fresh.backward(Tensor<float>({5, 2})), Catch::Contains("[2, 5]") && Catch::Contains("[5, 2]"));

  GELU<> gelu;
  CHECK_THROWS_WITH(gelu.backward(Tensor<float>({3})), Catch::Contains("GELU") && Catch::Contains("before forward"));
  gelu.forward(Tensor<float>({3, 4}));
  CHECK_THROWS_WITH(gelu.backward(Tensor<float>({4, 3})), Catch::Contains("[3, 4]") && Catch::Contains("[4, 3]"));
}
