#include "stpain/rnn/attention.hpp"

#include <cmath>

#include "stpain/compose/sequential.hpp"
#include "stpain/rnn/lstm.hpp"
#include "support/fixtures.hpp"
#include "support/gradcheck.hpp"

using namespace stpain;
using namespace stpain::testing;

static_assert(Layer<DotProductSelfAttention<>>);
static_assert(Layer<AdditiveAttention<cpu, double>>);
// The authors' "LSTM with attention" head, up to its dense layers.
static_assert(Layer<Sequential<LSTM<>, DotProductSelfAttention<>, LSTM<>>>);

namespace {
const safetensors::File& fixture() {
  static const safetensors::File f(fixture_path("rnn.safetensors"));
  return f;
}
}  // namespace

TEST_CASE("DotProductSelfAttention matches softmax(x x^T [/ sqrt(F)]) x in torch") {
  DotProductSelfAttention<> plain;
  expect_matches_case(plain, fixture(), "dot_attention");
  DotProductSelfAttention<> scaled(true);
  expect_matches_case(scaled, fixture(), "dot_attention_scaled");
}

TEST_CASE("DotProductSelfAttention keeps its weights: rows over the keys summing to one") {
  const auto x = random_tensor({2, 4, 3}, 5);
  DotProductSelfAttention<cpu, double> att;
  const auto y = att.forward(x);
  const auto& w = att.attention_weights();
  REQUIRE(w.shape() == Shape{2, 4, 4});
  // Row (n=1, t=2) by hand.
  double scores[4], sum = 0;
  for (int64_t k = 0; k < 4; ++k) {
    scores[k] = 0;
    for (int64_t j = 0; j < 3; ++j) scores[k] += x(1, 2, j) * x(1, k, j);
  }
  for (double& s : scores) sum += (s = std::exp(s));
  double out0 = 0;
  for (int64_t k = 0; k < 4; ++k) {
    CHECK(w(1, 2, k) == Approx(scores[k] / sum).margin(1e-14));
    out0 += scores[k] / sum * x(1, k, 0);
  }
  CHECK(y(1, 2, 0) == Approx(out0).margin(1e-14));
}

TEST_CASE("AdditiveAttention matches a torch Bahdanau pooling module") {
  AdditiveAttention<> att(4, 6);
  expect_matches_case(att, fixture(), "additive_attention");
  const auto& w = att.attention_weights();
  REQUIRE(w.shape() == Shape{3, 5});
  for (int64_t n = 0; n < 3; ++n) {
    double s = 0;
    for (int64_t t = 0; t < 5; ++t) s += w(n, t);
    CHECK(s == Approx(1.0));
  }
}

TEST_CASE("Attention gradients match central differences") {
  DotProductSelfAttention<cpu, double> plain;
  check_gradients(plain, random_tensor({2, 5, 3}, 1));
  DotProductSelfAttention<cpu, double> scaled(true);
  check_gradients(scaled, random_tensor({3, 4, 6}, 2));
  AdditiveAttention<cpu, double> additive(3, 5);
  check_gradients(additive, random_tensor({2, 6, 3}, 3));
  // Inside the authors' head: LSTM -> attention -> LSTM (last state).
  Sequential<LSTM<cpu, double>, DotProductSelfAttention<cpu, double>, LSTM<cpu, double>> head(
      LSTM<cpu, double>(4, 3), DotProductSelfAttention<cpu, double>(), LSTM<cpu, double>(3, 2, false));
  check_gradients(head, random_tensor({2, 5, 4}, 4));
}

TEST_CASE("Attention parameters are named as the torch module, and bad inputs name their shapes") {
  AdditiveAttention<> att(4, 6);
  CHECK(parameter_names(att, "pool.") == std::vector<std::string>{"pool.proj.weight", "pool.proj.bias", "pool.v.weight"});
  CHECK(att.v.weight.value.shape() == Shape{1, 6});
  CHECK(att.proj.weight.value.shape() == Shape{6, 4});
  CHECK_THROWS_AS(att.forward(Tensor<float>({2, 5, 3})), ShapeError);
  CHECK_THROWS_WITH(att.forward(Tensor<float>({2, 5, 3})), Catch::Contains("[2, 5, 3]") && Catch::Contains("4"));
  CHECK_THROWS_WITH(att.backward(Tensor<float>({2, 4})), Catch::Contains("before forward"));
  att.forward(Tensor<float>({2, 5, 4}));
  CHECK_THROWS_WITH(att.backward(Tensor<float>({2, 5, 4})), Catch::Contains("[2, 5, 4]") && Catch::Contains("[2, 4]"));
  DotProductSelfAttention<> dot;
  CHECK(parameter_names(dot).empty());
  CHECK_THROWS_WITH(dot.forward(Tensor<float>({5, 4})), Catch::Contains("[5, 4]"));
  dot.forward(Tensor<float>({2, 5, 4}));
  CHECK_THROWS_WITH(dot.backward(Tensor<float>({2, 5, 3})), Catch::Contains("[2, 5, 3]") && Catch::Contains("[2, 5, 4]"));
}
