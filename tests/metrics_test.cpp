#include "stpain/train/metrics.hpp"

#include "support/fixtures.hpp"

using namespace stpain;
using namespace stpain::testing;

namespace {

const safetensors::File& fixture() {
  static const safetensors::File f(fixture_path("training.safetensors"));
  return f;
}

Tensor<double> as_tensor(const std::vector<double>& v) {
  return Tensor<double>::from({static_cast<int64_t>(v.size())}, v);
}
Tensor<double> as_tensor(const AveragedScores& a) {
  return as_tensor(std::vector<double>{a.precision, a.recall, a.f1});
}

constexpr int64_t kClasses = 5;  // class 3 is never predicted, class 4 never occurs

}  // namespace

TEST_CASE("confusion matrix, accuracy and per-class scores match sklearn") {
  const std::vector<int64_t> y_true = fixture().load_integers("metrics.y_true");
  const std::vector<int64_t> y_pred = fixture().load_integers("metrics.y_pred");

  const ConfusionMatrix cm = confusion_matrix(y_true, y_pred, kClasses);
  std::vector<int64_t> flat;
  for (const auto& row : cm) flat.insert(flat.end(), row.begin(), row.end());
  CHECK(flat == fixture().load_integers("metrics.confusion"));

  expect_close(Tensor<double>::from({1}, {accuracy(y_true, y_pred)}), fixture().load("metrics.accuracy"), "accuracy");

  const ClassScores s = precision_recall_fscore_support(y_true, y_pred, kClasses);
  expect_close(as_tensor(s.precision), fixture().load("metrics.precision"), "precision");
  expect_close(as_tensor(s.recall), fixture().load("metrics.recall"), "recall");
  expect_close(as_tensor(s.f1), fixture().load("metrics.f1"), "f1");
  CHECK(s.support == fixture().load_integers("metrics.support"));
  expect_close(as_tensor(macro_average(s)), fixture().load("metrics.macro"), "macro avg");
  expect_close(as_tensor(weighted_average(s)), fixture().load("metrics.weighted"), "weighted avg");

  // zero_division = 0: a class never predicted has precision 0, a class that
  // never occurs has recall 0, and F1 0 for both.
  CHECK(s.precision[3] == 0.0);
  CHECK(s.f1[3] == 0.0);
  CHECK(s.support[4] == 0);
  CHECK(s.precision[4] == 0.0);
  CHECK(s.recall[4] == 0.0);
}

TEST_CASE("roc_auc_score matches sklearn, ties included") {
  const std::vector<int64_t> y = fixture().load_integers("metrics.auc.y_true");
  const Tensor<float> scores = fixture().load("metrics.auc.scores");
  const std::vector<float> s(scores.begin(), scores.end());
  const double auc = roc_auc_score(y, s);
  expect_close(Tensor<double>::from({1}, {auc}), fixture().load("metrics.auc.value"), "roc_auc");
  const std::vector<double> s64(s.begin(), s.end());
  CHECK(roc_auc_score(y, s64) == Approx(auc));

  // Hand-checked: all ties give 0.5; perfect and reversed orderings 1 and 0.
  const std::vector<int64_t> yy{0, 1, 0, 1};
  CHECK(roc_auc_score(yy, std::vector<double>{0.3, 0.3, 0.3, 0.3}) == 0.5);
  CHECK(roc_auc_score(yy, std::vector<double>{0.1, 0.9, 0.2, 0.8}) == 1.0);
  CHECK(roc_auc_score(yy, std::vector<double>{0.9, 0.1, 0.8, 0.2}) == 0.0);
  CHECK(roc_auc_score(yy, std::vector<double>{0.1, 0.5, 0.5, 0.9}) == 0.875);  // one tie: half credit
}

TEST_CASE("roc_auc_score rejects one-class and non-binary labels clearly") {
  CHECK_THROWS_AS(roc_auc_score(std::vector<int64_t>{1, 1, 1}, std::vector<double>{0.2, 0.4, 0.9}), Error);
  CHECK_THROWS_WITH(roc_auc_score(std::vector<int64_t>{1, 1, 1}, std::vector<double>{0.2, 0.4, 0.9}),
                    Catch::Contains("only one class (1)") && Catch::Contains("not defined"));
  CHECK_THROWS_WITH(roc_auc_score(std::vector<int64_t>{0, 0}, std::vector<double>{0.2, 0.4}),
                    Catch::Contains("only one class (0)"));
  CHECK_THROWS_WITH(roc_auc_score(std::vector<int64_t>{0, 2, 1}, std::vector<double>{0.2, 0.4, 0.9}),
                    Catch::Contains("label 2") && Catch::Contains("index 1"));
  CHECK_THROWS_AS(roc_auc_score(std::vector<int64_t>{0, 1}, std::vector<double>{0.2}), ShapeError);
  CHECK_THROWS_AS(roc_auc_score(std::vector<int64_t>{0, 1}, std::vector<double>{0.2, std::nan("")}), NonFiniteError);
}

TEST_CASE("metrics name bad labels and mismatched lengths") {
  CHECK_THROWS_AS(confusion_matrix(std::vector<int64_t>{0, 1}, std::vector<int64_t>{0}, 2), ShapeError);
  CHECK_THROWS_WITH(confusion_matrix(std::vector<int64_t>{0, 1}, std::vector<int64_t>{0}, 2),
                    Catch::Contains("y_true has 2") && Catch::Contains("y_pred has 1"));
  CHECK_THROWS_WITH(confusion_matrix(std::vector<int64_t>{0, 1}, std::vector<int64_t>{0, 7}, 3),
                    Catch::Contains("y_pred label 7") && Catch::Contains("index 1") && Catch::Contains("3 classes"));
  CHECK_THROWS_WITH(accuracy(std::vector<int64_t>{}, std::vector<int64_t>{}), Catch::Contains("no samples"));
  CHECK_THROWS_WITH(classification_report(std::vector<int64_t>{0, 1}, std::vector<int64_t>{0, 1}, 2, {"cat"}),
                    Catch::Contains("1 class names for 2 classes"));
}

TEST_CASE("argmax picks the predicted class of each row") {
  const Tensor<float> logits = Tensor<float>::from({3, 3}, {0.1f, 2.0f, -1.0f, 5.0f, 5.0f, 1.0f, -3.0f, -2.0f, -1.0f});
  CHECK(argmax(logits) == std::vector<int64_t>{1, 0, 2});
  CHECK_THROWS_AS(argmax(Tensor<float>({4})), ShapeError);
}

TEST_CASE("mean and sample std over folds") {
  const Tensor<float> folds = fixture().load("metrics.folds");
  const std::vector<double> v(folds.begin(), folds.end());
  const MeanStd r = mean_and_std(v);
  expect_close(Tensor<double>::from({2}, {r.mean, r.std}), fixture().load("metrics.folds.mean_std"), "mean, std");
  const MeanStd one = mean_and_std(std::vector<double>{0.8});
  CHECK(one.mean == 0.8);
  CHECK(std::isnan(one.std));
  CHECK_THROWS_WITH(mean_and_std(std::vector<double>{}), Catch::Contains("no values"));
}

TEST_CASE("ClassificationReport prints like sklearn and serialises to JSON") {
  const std::vector<int64_t> y_true = fixture().load_integers("metrics.y_true");
  const std::vector<int64_t> y_pred = fixture().load_integers("metrics.y_pred");
  ClassificationReport r = classification_report(y_true, y_pred, kClasses, {"akiec", "bcc", "bkl", "df", "mel"});
  CHECK(r.num_samples() == 20);
  CHECK(r.accuracy == Approx(0.55));
  CHECK(r.macro_avg.f1 == Approx(macro_average(r.per_class).f1));

  const std::string text = r.str();
  INFO(text);
  CHECK_THAT(text, Catch::Contains("precision") && Catch::Contains("f1-score") && Catch::Contains("support"));
  CHECK_THAT(text, Catch::Contains("akiec") && Catch::Contains("macro avg") && Catch::Contains("weighted avg"));
  CHECK_THAT(text, Catch::Contains("accuracy") && Catch::Contains("0.5500") && Catch::Contains("rows = true"));
  CHECK_THAT(text, !Catch::Contains("roc auc"));

  r.roc_auc = 0.75;
  CHECK_THAT(r.str(), Catch::Contains("roc auc") && Catch::Contains("0.7500"));
  const json::Value j = r.to_json();
  CHECK(j.at("accuracy").as_number() == Approx(0.55));
  CHECK(j.at("bcc").at("precision").as_number() == Approx(r.per_class.precision[1]));
  CHECK(j.at("df").at("precision").as_number() == 0.0);
  CHECK(j.at("mel").at("support").as_number() == 0.0);
  CHECK(j.at("macro avg").at("f1-score").as_number() == Approx(r.macro_avg.f1));
  CHECK(j.at("weighted avg").at("support").as_number() == 20.0);
  CHECK(j.at("roc_auc").as_number() == 0.75);
  CHECK(j.at("confusion_matrix").as_array().size() == 5);
  CHECK(j.at("confusion_matrix").as_array()[0].as_array()[0].as_number() == 4.0);
  // The JSON text parses back to the same values.
  const json::Value back = json::parse(json::dump(j, 2));
  CHECK(back.at("bkl").at("recall").as_number() == Approx(r.per_class.recall[2]));

  // Default class names are the indices.
  const ClassificationReport plain = classification_report(y_true, y_pred, kClasses);
  CHECK(plain.class_names == std::vector<std::string>{"0", "1", "2", "3", "4"});
  CHECK_FALSE(plain.to_json().as_object().count("roc_auc"));
}
