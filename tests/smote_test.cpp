#include "stpain/train/smote.hpp"

#include <catch2/catch.hpp>

#include "stpain/train/landmark_augment.hpp"
#include "stpain/train/scaler.hpp"
#include "support/fixtures.hpp"

using namespace stpain;
using namespace stpain::testing;

TEST_CASE("SMOTE reproduces imbalanced-learn's fit_resample draw for draw") {
  const safetensors::File f(fixture_path("smote.safetensors"));
  for (const auto& [name, k, seed] : {std::tuple{"binary", 5, 42u}, std::tuple{"three", 3, 2001u}}) {
    INFO(name);
    const std::string c = name;
    const auto r = smote(f.load(c + ".x"), f.load_integers(c + ".y"), {.k_neighbors = k, .random_state = seed});
    CHECK(r.y == f.load_integers(c + ".y_resampled"));
    CHECK(r.original == f.load(c + ".x").size(0));
    expect_close(r.x, f.load(c + ".x_resampled"), c + " resampled", 1e-7);
  }
}

TEST_CASE("numpy's legacy random stream: randint by masked rejection and 53-bit doubles") {
  NumpyRandomState rs(42);  // numpy.random.RandomState(42).randint(0, 37, 10), then .uniform(size=3)
  std::vector<int64_t> ints;
  for (int i = 0; i < 10; ++i) ints.push_back(rs.randint(37));
  CHECK(ints == std::vector<int64_t>{28, 14, 7, 20, 18, 22, 10, 10, 23, 35});
  CHECK(rs.random_sample() == 0.14286681792194078);
  CHECK(rs.random_sample() == 0.6508884729488529);
}

TEST_CASE("SMOTE samples lie between a sample and one of its k nearest same-class neighbours") {
  Generator g(3);
  auto x = Tensor<float>::empty({40, 3});
  std::vector<int64_t> y(40, 0);
  for (int64_t i = 0; i < 40; ++i) {
    y[static_cast<size_t>(i)] = i < 10;
    for (int c = 0; c < 3; ++c) x(i, c) = static_cast<float>(g.normal() + 4.0 * (i < 10));
  }
  const auto r = smote(x, y, {.k_neighbors = 5, .random_state = 1});
  REQUIRE(r.x.size(0) == 60);  // the minority class grows from 10 to 30
  CHECK(std::count(r.y.begin(), r.y.end(), 1) == 30);
  std::vector<int64_t> minority;
  for (int64_t i = 0; i < 40; ++i)
    if (y[static_cast<size_t>(i)] == 1) minority.push_back(i);
  for (int64_t s = 40; s < 60; ++s) {
    // Some pair (a, b) of minority samples has the new point on its segment.
    bool on_segment = false;
    for (int64_t a : minority)
      for (int64_t b : minority) {
        if (a == b) continue;
        double t = -1;
        bool ok = true;
        for (int c = 0; c < 3 && ok; ++c) {
          const double d = x(b, c) - x(a, c), v = r.x(s, c) - x(a, c);
          const double tc = std::fabs(d) > 1e-6 ? v / d : 0.0;
          if (t < 0) t = tc;
          ok = tc >= -1e-5 && tc <= 1 + 1e-5 && std::fabs(tc - t) < 1e-3;
        }
        on_segment |= ok;
      }
    CHECK(on_segment);
  }
  CHECK_THROWS_WITH(smote(x.slice(0, 12), std::vector<int64_t>(y.begin(), y.begin() + 12)),
                    Catch::Contains("has 2 samples") || Catch::Contains("needs more than k_neighbors"));
}

TEST_CASE("StandardScaler matches scikit-learn and refuses other widths") {
  const safetensors::File f(fixture_path("smote.safetensors"));
  StandardScaler s;
  expect_close(s.fit_transform(f.load("binary.x")), f.load("binary.scaled"), "scaled", 1e-6);
  CHECK_THROWS_AS(s.transform(Tensor<float>({2, 3})), ShapeError);
  auto constant = Tensor<float>::full({4, 2}, 3.f);
  CHECK(s.fit_transform(constant)[1] == 0.f);  // centred, scale 1
}

TEST_CASE("landmark augmentation moves the whole clip by one similarity transform") {
  Generator g(9);
  auto clip = Tensor<float>::empty({3, 4, 2});
  for (auto& v : clip) v = static_cast<float>(g.uniform(0, 100));
  const auto out = augment_landmark_clip(clip, {.max_rotation_degrees = 10, .max_scale = 0.1, .max_translation = 0.05}, g);
  // Distances between points scale by the same factor in every frame.
  auto dist = [](const Tensor<float>& t, int f, int a, int b) {
    return std::hypot(t(f, a, 0) - t(f, b, 0), t(f, a, 1) - t(f, b, 1));
  };
  const double ratio = dist(out, 0, 0, 1) / dist(clip, 0, 0, 1);
  CHECK(ratio == Approx(dist(out, 2, 2, 3) / dist(clip, 2, 2, 3)).epsilon(1e-4));
  CHECK(ratio >= 0.9 - 1e-6);
  CHECK(ratio <= 1.1 + 1e-6);
  CHECK(out[0] != clip[0]);
  CHECK_THROWS_AS(augment_landmark_clip(Tensor<float>({3, 4}), {}, g), ShapeError);
}
