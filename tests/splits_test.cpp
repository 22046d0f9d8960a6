#include "stpain/train/splits.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <set>

using namespace stpain;

namespace {

// PEMF's shape: 68 subjects x (1 neutral + 3 pain) clips, in subject order.
struct Dataset {
  std::vector<int64_t> labels, subjects;
};

Dataset pemf_like() {
  Dataset d;
  for (int64_t s = 0; s < 68; ++s)
    for (int64_t c = 0; c < 4; ++c) {
      d.labels.push_back(c == 0 ? 0 : 1);
      d.subjects.push_back(100 + 3 * s);  // ids need not be contiguous
    }
  return d;
}

// Subjects with 1..8 clips each and their own pain ratio.
Dataset irregular(int64_t subjects, uint64_t seed) {
  Generator g(seed);
  Dataset d;
  for (int64_t s = 0; s < subjects; ++s) {
    const int64_t clips = 1 + g.randint(8);
    const double pain = g.uniform(0.3, 0.9);
    for (int64_t c = 0; c < clips; ++c) {
      d.labels.push_back(g.bernoulli(pain) ? 1 : 0);
      d.subjects.push_back(s);
    }
  }
  return d;
}

double share_of_label(const std::vector<int64_t>& idx, const std::vector<int64_t>& labels, int64_t label) {
  int64_t n = 0;
  for (int64_t i : idx) n += labels[static_cast<size_t>(i)] == label;
  return static_cast<double>(n) / static_cast<double>(idx.size());
}

int64_t count_label(const std::vector<int64_t>& labels, int64_t label) {
  return std::count(labels.begin(), labels.end(), label);
}

bool disjoint(const std::vector<int64_t>& a, const std::vector<int64_t>& b) {
  std::vector<int64_t> both;
  std::set_intersection(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(both));
  return both.empty();
}

std::set<int64_t> subjects_of(const std::vector<int64_t>& idx, const std::vector<int64_t>& subjects) {
  std::set<int64_t> s;
  for (int64_t i : idx) s.insert(subjects[static_cast<size_t>(i)]);
  return s;
}

bool same_folds(const std::vector<Fold>& a, const std::vector<Fold>& b) {
  if (a.size() != b.size()) return false;
  for (size_t k = 0; k < a.size(); ++k)
    if (a[k].train != b[k].train || a[k].validation != b[k].validation || a[k].test != b[k].test) return false;
  return true;
}

void check_partition(const Fold& f, size_t clips) {
  REQUIRE(f.train.size() + f.validation.size() + f.test.size() == clips);
  REQUIRE_NOTHROW(check_fold(f, static_cast<int64_t>(clips)));
  CHECK(std::is_sorted(f.train.begin(), f.train.end()));
  CHECK(std::is_sorted(f.validation.begin(), f.validation.end()));
  CHECK(std::is_sorted(f.test.begin(), f.test.end()));
}

}  // namespace

TEST_CASE("paper protocol: 80/10/10 stratified folds with disjoint test parts") {
  const Dataset d = pemf_like();  // 68 no pain, 204 pain
  const auto folds = make_paper_folds(d.labels);
  REQUIRE(folds.size() == 5);
  for (const Fold& f : folds) {
    check_partition(f, d.labels.size());
    // Per class round(10%): 7 of 68 and 20 of 204, in test and in validation.
    CHECK(f.test.size() == 27);
    CHECK(f.validation.size() == 27);
    CHECK(f.train.size() == 272 - 54);
    CHECK(share_of_label(f.test, d.labels, 0) == Approx(7.0 / 27));
    CHECK(share_of_label(f.validation, d.labels, 0) == Approx(7.0 / 27));
    CHECK(share_of_label(f.train, d.labels, 0) == Approx(54.0 / 218));
  }
  for (size_t a = 0; a < folds.size(); ++a)
    for (size_t b = a + 1; b < folds.size(); ++b) CHECK(disjoint(folds[a].test, folds[b].test));
}

TEST_CASE("paper protocol: with a class size divisible by 10 the held-out 20% blocks tile the data") {
  std::vector<int64_t> labels(300, 1);
  std::fill(labels.begin(), labels.begin() + 100, 0);
  Generator(3).shuffle(labels);
  const auto folds = make_paper_folds(labels, {.seed = 9});
  std::vector<int> tested(300, 0), validated(300, 0);
  for (const Fold& f : folds) {
    check_partition(f, 300);
    CHECK(f.test.size() == 30);
    CHECK(f.validation.size() == 30);
    CHECK(share_of_label(f.test, labels, 0) == Approx(1.0 / 3));  // 10 of 100 and 20 of 200
    for (int64_t i : f.test) ++tested[static_cast<size_t>(i)];
    for (int64_t i : f.validation) ++validated[static_cast<size_t>(i)];
  }
  // Every clip is held out exactly once: in one fold's test or one fold's validation.
  for (size_t i = 0; i < 300; ++i) CHECK(tested[i] + validated[i] == 1);
}

TEST_CASE("paper protocol: a test fraction above 1/K overlaps test parts but keeps every fold valid") {
  const Dataset d = pemf_like();
  const auto folds = make_paper_folds(d.labels, {.folds = 5, .test_fraction = 0.3, .validation_fraction = 0.1});
  bool overlap = false;
  for (size_t k = 0; k < folds.size(); ++k) {
    check_partition(folds[k], d.labels.size());
    CHECK(folds[k].test.size() == 20 + 61);  // round(0.3 * 68) + round(0.3 * 204)
    overlap = overlap || !disjoint(folds[k].test, folds[(k + 1) % folds.size()].test);
  }
  CHECK(overlap);
}

TEST_CASE("paper protocol: the seed decides the folds") {
  const Dataset d = pemf_like();
  CHECK(same_folds(make_paper_folds(d.labels, {.seed = 1}), make_paper_folds(d.labels, {.seed = 1})));
  CHECK_FALSE(same_folds(make_paper_folds(d.labels, {.seed = 1}), make_paper_folds(d.labels, {.seed = 2})));
}

TEST_CASE("paper protocol: errors name the numbers") {
  std::vector<int64_t> labels(40, 1);
  labels[0] = labels[1] = labels[2] = 0;
  CHECK_THROWS_WITH(make_paper_folds(labels),
                    Catch::Contains("class 0 has 3 clips") && Catch::Contains("need at least 5"));
  CHECK_THROWS_WITH(make_paper_folds(std::vector<int64_t>(40, 1), {.folds = 1}), Catch::Contains("at least 2 folds"));
  CHECK_THROWS_WITH(make_paper_folds(std::vector<int64_t>(40, 1), {.test_fraction = 1.5}),
                    Catch::Contains("test_fraction must be in (0, 1), got 1.5"));
  CHECK_THROWS_WITH(make_paper_folds(std::vector<int64_t>{0, 1, -1}), Catch::Contains("label -1 of clip 2"));
  CHECK_THROWS_WITH(make_paper_folds(std::vector<int64_t>{}), Catch::Contains("no clips"));
}

TEST_CASE("subject protocol: PEMF-shaped data, no subject in two parts") {
  const Dataset d = pemf_like();
  const auto folds = make_subject_folds(d.labels, d.subjects);
  REQUIRE(folds.size() == 5);
  std::vector<int> tested(d.labels.size(), 0);
  for (const Fold& f : folds) {
    check_partition(f, d.labels.size());
    REQUIRE_NOTHROW(check_fold(f, static_cast<int64_t>(d.labels.size()), d.subjects));
    const auto train = subjects_of(f.train, d.subjects), val = subjects_of(f.validation, d.subjects),
               test = subjects_of(f.test, d.subjects);
    CHECK(train.size() + val.size() + test.size() == 68);  // each subject in exactly one part
    // 68 subjects in 5 groups: 13 or 14 subjects (52 or 56 clips) per test part.
    CHECK((test.size() == 13 || test.size() == 14));
    // Validation: whole subjects nearest 10% of 272 clips = 27.2 -> 7 subjects.
    CHECK(f.validation.size() == 28);
    CHECK(share_of_label(f.test, d.labels, 0) == Approx(0.25));
    CHECK(share_of_label(f.validation, d.labels, 0) == Approx(0.25));
    for (int64_t i : f.test) ++tested[static_cast<size_t>(i)];
  }
  // Test parts are the K groups: every clip is tested exactly once.
  CHECK(std::all_of(tested.begin(), tested.end(), [](int t) { return t == 1; }));
}

TEST_CASE("subject protocol: uneven subjects give balanced groups and label ratios") {
  const Dataset d = irregular(60, 7);
  const double n = static_cast<double>(d.labels.size());
  const double overall = static_cast<double>(count_label(d.labels, 0)) / n;
  const auto folds = make_subject_folds(d.labels, d.subjects, {.seed = 11});
  for (const Fold& f : folds) {
    check_partition(f, d.labels.size());
    REQUIRE_NOTHROW(check_fold(f, static_cast<int64_t>(d.labels.size()), d.subjects));
    INFO("test " << f.test.size() << " of " << n << " clips, validation " << f.validation.size());
    // A group is within one subject (8 clips at most) of n / 5.
    CHECK(std::fabs(static_cast<double>(f.test.size()) - n / 5) <= 8);
    CHECK(share_of_label(f.test, d.labels, 0) == Approx(overall).margin(0.06));
    CHECK(static_cast<double>(f.validation.size()) / n == Approx(0.1).margin(0.03));
    CHECK(share_of_label(f.validation, d.labels, 0) == Approx(overall).margin(0.1));
  }
}

TEST_CASE("subject protocol: deterministic by seed, validation optional") {
  const Dataset d = irregular(30, 5);
  CHECK(same_folds(make_subject_folds(d.labels, d.subjects, {.seed = 4}),
                   make_subject_folds(d.labels, d.subjects, {.seed = 4})));
  CHECK_FALSE(same_folds(make_subject_folds(d.labels, d.subjects, {.seed = 4}),
                         make_subject_folds(d.labels, d.subjects, {.seed = 5})));
  for (const Fold& f : make_subject_folds(d.labels, d.subjects, {.folds = 3, .validation_fraction = 0})) {
    CHECK(f.validation.empty());
    check_partition(f, d.labels.size());
  }
  // make_folds dispatches on the protocol.
  CHECK(same_folds(make_folds(Protocol::subject, d.labels, d.subjects), make_subject_folds(d.labels, d.subjects)));
  CHECK(same_folds(make_folds(parse_protocol("paper"), d.labels, {}), make_paper_folds(d.labels)));
  CHECK_THROWS_WITH(parse_protocol("clip"), Catch::Contains("unknown evaluation protocol \"clip\""));
}

TEST_CASE("subject protocol: errors name the numbers") {
  const std::vector<int64_t> labels = {0, 1, 1, 0, 1, 1};
  CHECK_THROWS_WITH(make_subject_folds(labels, std::vector<int64_t>{1, 1, 2, 2, 3, 3}),
                    Catch::Contains("3 subjects cannot make 5"));
  CHECK_THROWS_WITH(make_subject_folds(labels, std::vector<int64_t>{1, 1, 1, 2, 2, 2}, {.folds = 2}),
                    Catch::Contains("leaves 1 subject(s) of 2") && Catch::Contains("validation"));
  CHECK_NOTHROW(make_subject_folds(labels, std::vector<int64_t>{1, 1, 1, 2, 2, 2},
                                   {.folds = 2, .validation_fraction = 0}));
  CHECK_THROWS_WITH(make_subject_folds(labels, std::vector<int64_t>{1, 2}), Catch::Contains("6 labels but 2 subject"));
}

TEST_CASE("check_fold catches leaks, repeats and bad indices") {
  const std::vector<int64_t> subjects = {0, 0, 1, 1, 2, 2};
  CHECK_NOTHROW(check_fold({{0, 1}, {2, 3}, {4, 5}}, 6, subjects));
  CHECK_THROWS_WITH(check_fold({{0, 2, 3}, {}, {1, 4, 5}}, 6, subjects),
                    Catch::Contains("subject 0 (clip 1) is in train and test"));
  CHECK_THROWS_WITH(check_fold({{0, 1}, {1}, {4}}, 6), Catch::Contains("clip 1 is in validation and already in train"));
  CHECK_THROWS_WITH(check_fold({{0, 6}, {}, {4}}, 6), Catch::Contains("clip index 6 in train is outside [0, 6)"));
  CHECK_THROWS_WITH(check_fold({{0}, {}, {}}, 6), Catch::Contains("empty part"));
}

TEST_CASE("train_test_split: the landmark pipeline's 80/20") {
  // The authors' labels file: 68 no pain, 208 pain.
  std::vector<int64_t> labels(276, 1);
  std::fill(labels.begin(), labels.begin() + 68, 0);
  Generator(1).shuffle(labels);

  const TrainTest s = train_test_split(labels, {.test_fraction = 0.2, .seed = 42, .stratify = true});
  CHECK(s.test.size() == 56);  // ceil(0.2 * 276), sklearn's rounding
  CHECK(s.train.size() == 220);
  CHECK(disjoint(s.train, s.test));
  // 68 * 56 / 276 = 13.8 and 208 * 56 / 276 = 42.2: the leftover clip goes to the larger remainder.
  int64_t test_no_pain = 0;
  for (int64_t i : s.test) test_no_pain += labels[static_cast<size_t>(i)] == 0;
  CHECK(test_no_pain == 14);

  const TrainTest plain = train_test_split(labels, {.test_fraction = 0.2, .seed = 42, .stratify = false});
  CHECK(plain.test.size() == 56);
  CHECK(disjoint(plain.train, plain.test));
  CHECK(plain.test == train_test_split(labels, {.seed = 42, .stratify = false}).test);
  CHECK(plain.test != train_test_split(labels, {.seed = 43, .stratify = false}).test);

  const auto runs = repeated_train_test_splits(labels, 5);
  REQUIRE(runs.size() == 5);
  for (size_t r = 0; r < runs.size(); ++r) {
    check_partition(runs[r], labels.size());
    CHECK(runs[r].validation.empty());
    CHECK(runs[r].test == train_test_split(labels, {.seed = 42 + r}).test);
    if (r > 0) CHECK(runs[r].test != runs[r - 1].test);
  }
}

TEST_CASE("train_test_split: errors") {
  CHECK_THROWS_WITH(train_test_split(std::vector<int64_t>{0, 1, 1, 1, 1}),
                    Catch::Contains("class 0 has 1 clip") && Catch::Contains("at least 2"));
  CHECK_NOTHROW(train_test_split(std::vector<int64_t>{0, 1, 1, 1, 1}, {.stratify = false}));
  CHECK_THROWS_WITH(train_test_split(std::vector<int64_t>{0}, {.stratify = false}),
                    Catch::Contains("1 clips with test_fraction 0.2 give 1 test and 0 train"));
  CHECK_THROWS_WITH(train_test_split(std::vector<int64_t>{0, 1}, {.test_fraction = 0}),
                    Catch::Contains("test_fraction must be in (0, 1)"));
  CHECK_THROWS_WITH(repeated_train_test_splits(std::vector<int64_t>{0, 1}, 0), Catch::Contains("repeats"));
}

TEST_CASE("describe_fold counts clips per label") {
  const std::vector<int64_t> labels = {0, 1, 1, 0, 1, 1};
  CHECK(describe_fold({{0, 1, 2}, {3}, {4, 5}}, labels) == "train 3 [1 2] | validation 1 [1 0] | test 2 [0 2]");
}
