#include <catch2/catch.hpp>

#include "stpain/compose/concat.hpp"
#include "stpain/compose/repeat.hpp"
#include "stpain/compose/residual.hpp"
#include "stpain/compose/sequential.hpp"
#include "stpain/layers/linear.hpp"
#include "support/fixtures.hpp"
#include "support/gradcheck.hpp"

using namespace stpain;
using namespace stpain::testing;

namespace {
using D = Linear<cpu, double>;
}  // namespace

static_assert(Layer<Linear<cpu>>);
static_assert(Layer<Sequential<Linear<cpu>, Linear<cpu>>>);
static_assert(Layer<Residual<Linear<cpu>>>);
static_assert(Layer<Repeat<Linear<cpu>>>);
static_assert(Layer<Concat<Linear<cpu>, Linear<cpu>>>);

TEST_CASE("Sequential names children by index or by Named, like torch.nn.Sequential") {
  Sequential<Named<"fc1", D>, D> seq(D(3, 4), D(4, 2));
  CHECK(parameter_names(seq) == std::vector<std::string>{"fc1.weight", "fc1.bias", "1.weight", "1.bias"});
  CHECK(seq.forward(random_tensor({5, 3}, 1)).shape() == Shape{5, 2});
  Sequential<Inline<D>, Named<"proj", D>> inl(D(3, 3), D(3, 2));
  CHECK(parameter_names(inl) == std::vector<std::string>{"weight", "bias", "proj.weight", "proj.bias"});
  check_gradients(seq, random_tensor({5, 3}, 2));
}

TEST_CASE("Residual adds the input and keeps the block's names") {
  Residual<Sequential<D, D>> res(Sequential<D, D>(D(4, 6), D(6, 4)));
  CHECK(parameter_names(res) == std::vector<std::string>{"0.weight", "0.bias", "1.weight", "1.bias"});
  const auto x = random_tensor({3, 4}, 3);
  const auto y = res.forward(x);
  const auto inner = res.block().forward(x);
  CHECK(y[5] == Approx(inner[5] + x[5]));
  check_gradients(res, random_tensor({3, 4}, 4));
  Residual<D> wrong(D(4, 3));
  CHECK_THROWS_AS(wrong.forward(x), ShapeError);
}

TEST_CASE("Repeat holds a runtime number of blocks named 0..n-1") {
  Repeat<D> rep(3, [](size_t) { return D(4, 4); });
  CHECK(rep.size() == 3);
  CHECK(parameter_names(rep).back() == "2.bias");
  check_gradients(rep, random_tensor({2, 4}, 5));
}

TEST_CASE("Concat joins outputs on the last dimension and sums input gradients") {
  Concat<Named<"a", D>, Named<"b", D>> cat(D(3, 2), D(3, 5));
  const auto x = random_tensor({4, 3}, 6);
  const auto y = cat.forward(x);
  CHECK(y.shape() == Shape{4, 7});
  const auto b = cat.get<1>().forward(x);
  CHECK(y(2, 4) == Approx(b(2, 2)));
  CHECK(parameter_names(cat).front() == "a.weight");
  check_gradients(cat, random_tensor({4, 3}, 7));
}

TEST_CASE("train and eval reach every child") {
  Sequential<D, Residual<D>> seq(D(2, 2), Residual<D>(D(2, 2)));
  seq.eval();
  CHECK_FALSE(seq.get<1>().block().is_training());
  seq.train();
  CHECK(seq.get<0>().is_training());
}
