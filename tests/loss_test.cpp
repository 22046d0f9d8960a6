#include "stpain/train/loss.hpp"

#include "stpain/train/finite.hpp"
#include "support/fixtures.hpp"
#include "support/gradcheck.hpp"

using namespace stpain;
using namespace stpain::testing;

namespace {

const safetensors::File& fixture() {
  static const safetensors::File f(fixture_path("training.safetensors"));
  return f;
}

Tensor<double> scalar_tensor(double v) { return Tensor<double>::from({1}, {v}); }

void expect_case(const CrossEntropyResult<float>& r, const std::string& name) {
  expect_close(scalar_tensor(r.loss), fixture().load("ce." + name + ".loss"), "ce." + name + ".loss");
  expect_close(r.grad, fixture().load("ce." + name + ".grad"), "ce." + name + ".grad");
}

std::vector<double> class_weights() {
  const Tensor<float> w = fixture().load("ce.class_weights");
  return {w.begin(), w.end()};
}

}  // namespace

TEST_CASE("softmax_cross_entropy matches torch.nn.functional.cross_entropy") {
  const Tensor<float> logits = fixture().load("ce.logits");
  const std::vector<int64_t> labels = fixture().load_integers("ce.labels");

  expect_case(softmax_cross_entropy(logits, labels), "plain");
  expect_case(softmax_cross_entropy(logits, labels, {.class_weights = class_weights()}), "weighted");
  expect_case(softmax_cross_entropy(logits, labels, {.label_smoothing = 0.1}), "smooth");
  expect_case(softmax_cross_entropy(logits, labels, {.class_weights = class_weights(), .label_smoothing = 0.2}),
              "weighted_smooth");
  expect_case(CrossEntropyLoss{{.class_weights = class_weights()}}(logits, labels), "weighted");
}

TEST_CASE("Keras class weighting is the mean of w_y * loss_i") {
  const Tensor<float> logits = fixture().load("ce.logits");
  const std::vector<int64_t> labels = fixture().load_integers("ce.labels");
  const CrossEntropyOptions keras{.class_weights = class_weights(), .weight_reduction = ClassWeightReduction::keras};
  expect_case(softmax_cross_entropy(logits, labels, keras), "keras_weighted");
  CrossEntropyOptions keras_smooth = keras;
  keras_smooth.label_smoothing = 0.2;
  expect_case(softmax_cross_entropy(logits, labels, keras_smooth), "keras_weighted_smooth");
}

TEST_CASE("softmax_cross_entropy is stable for huge logits") {
  const Tensor<float> logits = fixture().load("ce.large.logits");
  const std::vector<int64_t> labels = fixture().load_integers("ce.labels");
  const auto r = softmax_cross_entropy(logits, labels);
  check_finite(r.loss, "large-logit loss");
  check_finite(r.grad, "large-logit gradient");
  expect_case(r, "large");
}

TEST_CASE("softmax and log_softmax match torch.softmax") {
  const Tensor<float> logits = fixture().load("ce.logits");
  const Tensor<float> p = softmax(logits);
  expect_close(p, fixture().load("ce.softmax"), "softmax");
  const Tensor<float> lp = log_softmax(logits);
  Tensor<float> exp_lp = Tensor<float>::empty(lp.shape());
  exp_lp.array() = lp.array().exp();
  expect_close(exp_lp, fixture().load("ce.softmax"), "exp(log_softmax)");
  for (int64_t i = 0; i < p.size(0); ++i) {
    double row = 0;
    for (int64_t c = 0; c < p.size(1); ++c) row += p(i, c);
    CHECK(row == Approx(1.0).epsilon(1e-6));
  }
}

TEST_CASE("cross-entropy gradient matches central differences") {
  const Tensor<double> logits = random_tensor({6, 4}, 11, 2.0);
  const std::vector<int64_t> labels{0, 3, 1, 1, 2, 3};
  const std::vector<CrossEntropyOptions> cases{
      {},
      {.label_smoothing = 0.15},
      {.class_weights = {0.3, 1.0, 2.5, 0.7}, .label_smoothing = 0.1},
      {.class_weights = {0.3, 1.0, 2.5, 0.7}, .weight_reduction = ClassWeightReduction::keras, .label_smoothing = 0.1},
  };
  for (size_t k = 0; k < cases.size(); ++k) {
    INFO("case " << k);
    const auto r = softmax_cross_entropy(logits, labels, cases[k]);
    Tensor<double> x = logits.clone();
    const double eps = 1e-6;
    for (int64_t i = 0; i < x.numel(); ++i) {
      const double saved = x[i];
      x[i] = saved + eps;
      const double up = softmax_cross_entropy(x, labels, cases[k]).loss;
      x[i] = saved - eps;
      const double down = softmax_cross_entropy(x, labels, cases[k]).loss;
      x[i] = saved;
      INFO("element " << i);
      CHECK(r.grad[i] == Approx((up - down) / (2 * eps)).margin(1e-8).epsilon(1e-6));
    }
  }
}

TEST_CASE("balanced_class_weights matches sklearn compute_class_weight('balanced')") {
  const std::vector<int64_t> labels = fixture().load_integers("balanced.labels");
  const std::vector<double> w = balanced_class_weights(labels, 4);
  expect_close(Tensor<double>::from({4}, w), fixture().load("balanced.weights"), "balanced weights");
  // A class that never occurs gets weight 0 instead of a division by zero.
  const std::vector<double> absent = balanced_class_weights(std::vector<int64_t>{0, 0, 1}, 3);
  CHECK(absent == std::vector<double>{0.5, 1.0, 0.0});  // 3 / (3 * count)
  CHECK_THROWS_WITH(balanced_class_weights(std::vector<int64_t>{0, 5}, 3),
                    Catch::Contains("label 5") && Catch::Contains("index 1"));
}

TEST_CASE("softmax_cross_entropy names bad labels and mismatched shapes") {
  const Tensor<float> logits({4, 3});
  CHECK_THROWS_AS(softmax_cross_entropy(logits, std::vector<int64_t>{0, 1, 3, 2}), Error);
  CHECK_THROWS_WITH(softmax_cross_entropy(logits, std::vector<int64_t>{0, 1, 3, 2}),
                    Catch::Contains("label 3") && Catch::Contains("index 2") && Catch::Contains("3 classes"));
  CHECK_THROWS_WITH(softmax_cross_entropy(logits, std::vector<int64_t>{0, -1, 0, 0}),
                    Catch::Contains("label -1") && Catch::Contains("index 1"));
  CHECK_THROWS_AS(softmax_cross_entropy(logits, std::vector<int64_t>{0, 1, 2}), ShapeError);
  CHECK_THROWS_WITH(softmax_cross_entropy(logits, std::vector<int64_t>{0, 1, 2}),
                    Catch::Contains("[4, 3]") && Catch::Contains("got 3"));
  CHECK_THROWS_WITH(softmax_cross_entropy(Tensor<float>({2, 3, 4}), std::vector<int64_t>{0, 1}),
                    Catch::Contains("[2, 3, 4]"));
  CHECK_THROWS_WITH(softmax_cross_entropy(logits, std::vector<int64_t>{0, 1, 2, 0}, {.class_weights = {1.0, 2.0}}),
                    Catch::Contains("2 class weights") && Catch::Contains("[4, 3]"));
  CHECK_THROWS_WITH(softmax_cross_entropy(logits, std::vector<int64_t>{0, 1, 2, 0}, {.label_smoothing = 1.5}),
                    Catch::Contains("label_smoothing"));
}

TEST_CASE("a NaN loss or logit gives a NonFiniteError naming where") {
  Tensor<float> logits = Tensor<float>::full({3, 2}, 0.5f);
  logits(1, 0) = std::nanf("");
  const auto r = softmax_cross_entropy(logits, std::vector<int64_t>{0, 1, 0});
  CHECK(std::isnan(r.loss));
  CHECK_THROWS_AS(check_finite(r.loss, "loss at epoch 3, batch 12"), NonFiniteError);
  CHECK_THROWS_WITH(check_finite(r.loss, "loss at epoch 3, batch 12"),
                    Catch::Contains("loss at epoch 3, batch 12") && Catch::Contains("nan"));
  CHECK_THROWS_WITH(check_finite(logits, "logits at batch 4"),
                    Catch::Contains("logits at batch 4") && Catch::Contains("[3, 2]") &&
                        Catch::Contains("element 2 [1, 0]") && Catch::Contains("1 of 6"));
  logits(2, 1) = INFINITY;
  CHECK_THROWS_WITH(check_finite(logits, "logits"), Catch::Contains("2 of 6"));
  CHECK_NOTHROW(check_finite(1.5, "loss"));
  CHECK_NOTHROW(check_finite(Tensor<float>({2, 2}), "zeros"));
  CHECK_THROWS_WITH(check_finite(-INFINITY, "validation loss"), Catch::Contains("validation loss is -inf"));
}
